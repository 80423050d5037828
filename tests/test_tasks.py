"""Every task end to end through the commands, in subprocesses, on small real subsets of real data:
`ftbook-finetune --task ...`, `ftbook-predict` (predictions and scores), and the export reloaded by transformers' `pipeline` alone.
Whole-text tasks (classify, multilabel, regression) and per-word tagging (tag)."""
import json
from pathlib import Path
import pytest
from conftest import assert_refused, run_cli

pytestmark = pytest.mark.xdist_group('tasks')  # one worker runs this file: its module fixtures train once

AFFECT = ['activation', 'imagery', 'pleasantness']

@pytest.fixture(scope='module')
def data(tmp_path_factory):
    "Real labelled files: General Inquirer categories (multilabel), Whissell's affect ratings (regression), debate statements by party (3 classes)"
    from ftbook.core import general_inquirer, whissell_affect
    from ftbook.grid import grid_dataset_file
    from ftbook.tag import debate_names
    tmp = tmp_path_factory.mktemp('data')
    gi, affect = general_inquirer().sample(frac=1, random_state=0), whissell_affect().sample(frac=1, random_state=0)
    gi[:1200].to_csv(tmp/'gi.csv', index=False); gi[1200:1260].to_csv(tmp/'gi_held_out.csv', index=False)
    affect[:1200].to_csv(tmp/'affect.csv', index=False); affect[1200:1260].to_csv(tmp/'affect_held_out.csv', index=False)
    names = debate_names().sample(frac=1, random_state=0)
    names[:1200].to_json(tmp/'names.jsonl', orient='records', lines=True)
    names[1200:1300].to_json(tmp/'names_held_out.jsonl', orient='records', lines=True)
    return dict(tmp=tmp, debates=grid_dataset_file('debates', tmp), names=names)

def _finetune(out:Path, *args):
    res = run_cli('ftbook-finetune', *args, '--out', out/'model', '--report', out/'report.json', '--no-checkpoints')
    assert res.returncode == 0, res.stderr[-3000:]
    return res, json.loads((out/'report.json').read_text())

@pytest.fixture(scope='module')
def multilabel(data, tmp_path_factory):
    out = tmp_path_factory.mktemp('multilabel')
    res, report = _finetune(out, '--data', data['tmp']/'gi.csv', '--text-col', 'word', '--label-col', 'labels', '--label-delim', '|',
                            '--task', 'multilabel', '--epochs', 3, '--lr', 5e-4, '--max-len', 16)
    return out, res, report

@pytest.fixture(scope='module')
def regression(data, tmp_path_factory):
    out = tmp_path_factory.mktemp('regression')
    res, report = _finetune(out, '--data', data['tmp']/'affect.csv', '--text-col', 'word', '--label-col', ','.join(AFFECT),
                            '--task', 'regression', '--epochs', 3, '--lr', 5e-4, '--max-len', 16)
    return out, res, report

def test_multilabel_learns_and_reports_a_threshold(multilabel):
    _, res, report = multilabel
    f = report['final']
    assert report['task'] == 'multilabel' and report['labels'] == ['Active', 'Econ@', 'Hostile', 'Negativ', 'Passive', 'Positiv', 'Strong', 'Weak']
    assert 'Validation micro F1' in res.stdout and 'at threshold' in res.stdout
    assert 0.05 <= f['threshold'] <= 0.95 and set(f['per_label']) == set(report['labels'])
    # predicting every label on every word scores about 0.33 micro F1 on this set; the model must do clearly better
    assert f['f1_micro'] > 0.4, f

def test_multilabel_predict_scores_and_pipeline(multilabel, data):
    out, _, report = multilabel
    res = run_cli('ftbook-predict', out/'model', 'furious', 'mortgage')
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 2 and all(set(l.split('\t')[0].split('|')) <= set(report['labels']) | {'-'} for l in lines), lines
    res = run_cli('ftbook-predict', out/'model', '--data', data['tmp']/'gi_held_out.csv', '--text-col', 'word', '--label-col', 'labels')
    assert res.returncode == 0 and res.stdout.startswith('Micro F1 ') and 'on 60 texts' in res.stdout, (res.stdout, res.stderr[-2000:])
    from transformers import pipeline
    scores = pipeline('text-classification', model=str(out/'model'), device='cpu', top_k=None)(['furious'])[0]
    assert {s['label'] for s in scores} == set(report['labels']) and all(0 <= s['score'] <= 1 for s in scores)
    assert json.loads((out/'model'/'config.json').read_text())['problem_type'] == 'multi_label_classification'

def test_regression_learns_predicts_and_reloads(regression, data):
    out, res, report = regression
    assert report['task'] == 'regression' and report['labels'] == AFFECT and 'Validation Pearson' in res.stdout
    assert report['final']['pearson'] > 0.25, report['final']  # predicting the mean scores 0
    res = run_cli('ftbook-predict', '--json-lines', out/'model', 'sunshine')
    row = json.loads(res.stdout)
    assert set(row) == {'text', *AFFECT} and all(0 < row[t] < 4 for t in AFFECT), row
    res = run_cli('ftbook-predict', out/'model', '--data', data['tmp']/'affect_held_out.csv', '--text-col', 'word', '--label-col', ','.join(AFFECT))
    assert res.returncode == 0 and res.stdout.startswith('Pearson ') and 'on 60 texts' in res.stdout, (res.stdout, res.stderr[-2000:])
    from transformers import pipeline
    scores = {s['label']: s['score'] for s in pipeline('text-classification', model=str(out/'model'), device='cpu', top_k=None)(['sunshine'])[0]}
    assert all(abs(scores[t] - row[t]) < 1e-3 for t in AFFECT), (scores, row)  # raw outputs, no softmax

def test_multiclass_from_the_debates(data, tmp_path):
    res, report = _finetune(tmp_path, '--data', data['debates'], '--task', 'classify', '--limit', 600, '--epochs', 1)
    assert report['task'] == 'classify' and len(report['labels']) == 3 and report['final']['accuracy'] > 0.4, report['final']
    from transformers import pipeline
    assert pipeline('text-classification', model=str(tmp_path/'model'), device='cpu')('We will build a wall.')[0]['label'] in report['labels']

@pytest.fixture(scope='module')
def tagger(data, tmp_path_factory):
    "A name tagger trained on 1,200 real debate sentences (words and IOB tags in JSONL: the task is inferred from the lists)"
    out = tmp_path_factory.mktemp('tagger')
    res, report = _finetune(out, '--data', data['tmp']/'names.jsonl', '--group-col', 'statement', '--epochs', 3, '--lr', 5e-4, '--max-len', 64)
    return out, res, report

def test_tagger_learns_and_reports(tagger):
    _, res, report = tagger
    f = report['final']
    assert report['task'] == 'tag' and report['labels'] == ['O', 'B-NAME', 'I-NAME'], report['labels']
    assert report['settings']['text_col'] == 'tokens' and report['settings']['label_col'] == 'tags'
    assert 'Validation entity F1' in res.stdout and 'sentences' in res.stdout, res.stdout
    # tagging nothing scores 0 entity F1 and about 0.92 word accuracy on these sentences: the model must find names
    assert f['entity_f1'] > 0.5 and f['word_accuracy'] > 0.95, f

def test_tagger_predicts_spans_scores_and_reloads_in_pipeline(tagger, data):
    out = tagger[0]/'model'
    text = 'thank you, senator kaine. governor pence, you have two minutes, and then hillary clinton will answer.'
    res = run_cli('ftbook-predict', '--json-lines', out, text)
    assert res.returncode == 0, res.stderr[-2000:]
    spans = json.loads(res.stdout)['spans']
    assert spans and all(text[s['start']:s['end']] == s['text'] and s['label'] == 'NAME' and 0 < s['score'] <= 1 for s in spans), spans
    assert 'clinton' in {w for s in spans for w in s['text'].split()}, spans
    res = run_cli('ftbook-predict', out, '--data', data['tmp']/'names_held_out.jsonl', '--text-col', 'tokens', '--label-col', 'tags')
    assert res.returncode == 0 and res.stdout.startswith('Entity F1 ') and 'on 100 sentences' in res.stdout, (res.stdout, res.stderr[-2000:])
    from transformers import pipeline
    from ftbook.tag import TokenTagger
    held_out = [' '.join(w) for w in data['names']['tokens'][1200:1240]]
    theirs = pipeline('token-classification', model=str(out), aggregation_strategy='first', device='cpu')(held_out)
    ours = TokenTagger.from_pretrained(out, device='cpu').predict(held_out)
    assert [[(s['start'], s['end'], s['label']) for s in r] for r in ours] == [[(s['start'], s['end'], s['entity_group']) for s in r] for r in theirs]
    assert sum(map(len, ours)) > 10

def _conll(names, path):
    path.write_text('\n\n'.join('\n'.join(f'{w} {t}' for w, t in zip(r.tokens, r.tags)) for r in names.itertuples()) + '\n')
    return path

def test_a_lora_tagger_from_a_conll_file_resumes_and_reloads(data, tmp_path):
    "CoNLL input, LoRA with the adapters saved alone, checkpoints: resuming the finished run re-exports the same scores"
    args = ['--data', _conll(data['names'][:400], tmp_path/'names.conll'), '--strategy', 'lora', '--epochs', 1, '--max-len', 64,
            '--adapters-only', '--out', tmp_path/'model']
    first = run_cli('ftbook-finetune', *args, '--report', tmp_path/'first.json')
    assert first.returncode == 0, first.stderr[-3000:]
    assert (tmp_path/'model'/'adapter_config.json').exists() and json.loads((tmp_path/'model-checkpoints'/'run.json').read_text())['task'] is None
    again = run_cli('ftbook-finetune', '--resume', tmp_path/'model-checkpoints', '--out', tmp_path/'model', '--report', tmp_path/'again.json')
    assert again.returncode == 0, again.stderr[-3000:]
    a, b = (json.loads((tmp_path/f).read_text()) for f in ('first.json', 'again.json'))
    assert a['task'] == b['task'] == 'tag' and abs(a['final']['word_accuracy'] - b['final']['word_accuracy']) < 1e-6, (a['final'], b['final'])
    res = run_cli('ftbook-predict', tmp_path/'model', 'we met governor mike pence')
    assert res.returncode == 0 and res.stdout.rstrip().endswith('\twe met governor mike pence'), (res.stdout, res.stderr[-2000:])

def test_a_tagger_from_texts_and_spans(data, tmp_path):
    "Texts with character spans ({start, end, label}): the task is inferred, the tags come from the tokenizer's words"
    rows = []
    for r in data['names'][:300].itertuples():
        text, spans, pos = '', [], 0
        for i, (w, t) in enumerate(zip(r.tokens, r.tags)):
            start = len(text) + (1 if text else 0)
            text = f'{text} {w}' if text else w
            if t.startswith('B-'): spans.append(dict(start=start, end=start + len(w), label='NAME'))
            elif t.startswith('I-'): spans[-1]['end'] = start + len(w)
        rows.append(dict(text=text, spans=spans))
    (tmp_path/'spans.jsonl').write_text('\n'.join(json.dumps(r) for r in rows))
    res, report = _finetune(tmp_path, '--data', tmp_path/'spans.jsonl', '--epochs', 1, '--max-len', 64)
    assert report['task'] == 'tag' and report['labels'] == ['O', 'B-NAME', 'I-NAME'] and report['settings']['label_col'] == 'spans'

def _write(path, text): path.write_text(text); return path

BAD = {
    'target not a number': (lambda t: ['--data', _write(t/'r.csv', 'text,score\nsun,2.5\nrain,high\nsnow,1.0\n'), '--label-col', 'score', '--task', 'regression'],
                            "Regression target 'score' holds 'high', which is not a number"),
    'amounts as classes':  (lambda t: ['--data', _write(t/'p.csv', 'text,price\n' + ''.join(f'item {i},{i * 7}\n' for i in range(400))),
                                       '--label-col', 'price', '--task', 'classify'], 'look like amounts, not classes'),
    'whole numbers, no task': (lambda t: ['--data', _write(t/'p.csv', 'text,price\n' + ''.join(f'item {i},{i * 7}\n' for i in range(400))),
                                          '--label-col', 'price'], "400 different whole numbers: pass task='regression'"),
    'unknown task':        (lambda t: ['--task', 'ner'], "task is 'ner': choose one of classify, multilabel, regression"),
    'delim without multilabel': (lambda t: ['--label-delim', '|', '--task', 'regression'], "use it with task 'multilabel'"),
    'multilabel not 0/1':  (lambda t: ['--data', _write(t/'m.csv', 'text,a,b\nx,1,0\ny,2,1\n'), '--label-col', 'a,b', '--task', 'multilabel'],
                            "Multi-label column 'a' holds 2"),
    'tags and words differ': (lambda t: ['--data', _write(t/'t.jsonl', '{"tokens": ["Tim", "Kaine", "spoke"], "tags": ["B-NAME", "I-NAME", "O"]}\n'
                                                            '{"tokens": ["in", "Farmville"], "tags": ["O"]}\n')], 'Row 2 has 2 words and 1 tags'),
    'tag without data':    (lambda t: ['--task', 'tag'], '--task tag needs tagged data'),
    'overlapping spans':   (lambda t: ['--data', _write(t/'s.jsonl', '{"text": "Tim Kaine spoke", "spans": [[0, 9, "NAME"], [4, 9, "NAME"]]}\n')],
                            'spans (0, 9) and (4, 9) overlap'),
    'one label per text as tags': (lambda t: ['--data', _write(t/'c.csv', 'text,label\ngreat movie,pos\nawful film,neg\n'), '--task', 'tag'],
                                   'Row 1 has 2 words and 1 tags'),
    'delim with tags':     (lambda t: ['--data', _write(t/'d.jsonl', '{"tokens": ["a"], "tags": ["O"]}\n'), '--label-delim', '|'],
                            '--label-delim separates the labels of one text'),
    'monitor the task lacks': (lambda t: ['--data', _write(t/'r.csv', 'text,score\n' + ''.join(f'w{i},{i / 3:.2f}\n' for i in range(40))),
                                          '--label-col', 'score', '--monitor', 'accuracy'], "monitor is 'accuracy', which task 'regression' does not measure"),
}

@pytest.mark.parametrize('case', BAD, ids=list(BAD))
def test_bad_task_input_exits_2_with_one_line(case, tmp_path):
    args, msg = BAD[case]
    res = run_cli('ftbook-finetune', *args(tmp_path), '--out', tmp_path/'out', timeout=300)
    assert_refused(res, 'ftbook-finetune', msg, tmp_path/'out', tmp_path/'out-checkpoints')

def test_predict_refuses_a_label_the_multilabel_model_never_saw(multilabel, tmp_path):
    res = run_cli('ftbook-predict', multilabel[0]/'model', '--data', _write(tmp_path/'u.csv', 'word,labels\nfurious,Hostile|Angry\n'),
                  '--text-col', 'word', '--label-col', 'labels')
    assert res.returncode == 2 and "Label 'Angry' was never seen in training" in res.stderr and res.stdout == '', res.stderr[-2000:]

def test_predict_refuses_a_tag_the_tagger_never_saw(tagger, tmp_path):
    res = run_cli('ftbook-predict', tagger[0]/'model', '--data', _write(tmp_path/'u.jsonl', '{"tokens": ["Tim", "Kaine"], "tags": ["B-PER", "I-PER"]}\n'),
                  '--text-col', 'tokens', '--label-col', 'tags')
    assert res.returncode == 2 and "The tag 'B-PER' is not one the model knows" in res.stderr and res.stdout == '', res.stderr[-2000:]

def test_a_multilabel_run_resumes_with_its_task_and_threshold(data, tmp_path):
    "A LoRA multilabel run: run.json keeps the task and the delimiter; resuming the finished run re-exports the same model and scores"
    args = ['--data', data['tmp']/'gi.csv', '--text-col', 'word', '--label-col', 'labels', '--label-delim', '|', '--limit', 300,
            '--epochs', 1, '--max-len', 16, '--strategy', 'lora', '--out', tmp_path/'model', '--report', tmp_path/'first.json']
    first = run_cli('ftbook-finetune', *args)
    assert first.returncode == 0, first.stderr[-3000:]
    saved = json.loads((tmp_path/'model-checkpoints'/'run.json').read_text())
    assert (saved['label_delim'], saved['label_col']) == ('|', 'labels')
    again = run_cli('ftbook-finetune', '--resume', tmp_path/'model-checkpoints', '--out', tmp_path/'model', '--report', tmp_path/'again.json')
    assert again.returncode == 0, again.stderr[-3000:]
    a, b = (json.loads((tmp_path/f).read_text())['final'] for f in ('first.json', 'again.json'))
    assert a['threshold'] == b['threshold'] and abs(a['f1_micro'] - b['f1_micro']) < 1e-6, (a, b)

def test_this_file_runs_on_one_worker(request):
    """Under `make test` (pytest-xdist's loadgroup) this file's tests share one worker, so each trained fixture runs once: xdist marks the
    node ids with the group (pytest 9 broke that, hence the pin below 9 in settings.ini)"""
    if getattr(request.config.option, 'loadgroup', False): assert request.node.nodeid.endswith('@tasks'), request.node.nodeid

def test_tagger_at_its_defaults_matches_the_transformers_reference(tmp_path):
    """Issue 27: on real human-tagged sentences (the Penn Treebank WSJ sample's proper-noun names), ftbook's tagger given only --task and
    --data is at least as good as transformers' reference recipe (Trainer + DataCollatorForTokenClassification, Trainer's defaults, as
    tools/tag_reference.py runs it) at the same budget on the same split, and the entity F1 it reports is what seqeval gives on its exported
    model's predictions. (Before the tagging family's defaults, ftbook's batch of 32 took a quarter of the reference's optimizer steps: on
    such data it stayed far behind, and on rarer entities at 'O' everywhere.)"""
    import importlib.util
    from transformers import AutoModelForTokenClassification, AutoTokenizer, DataCollatorForTokenClassification, Trainer, TrainingArguments
    from conftest import ROOT
    from ftbook.core import resource_path
    from ftbook.grid import wsj_names
    from ftbook.tag import TokenClassificationDataLoaders
    spec = importlib.util.spec_from_file_location('tag_reference', ROOT/'tools'/'tag_reference.py')
    tool = importlib.util.module_from_spec(spec); spec.loader.exec_module(tool)
    rows = wsj_names().sample(n=400, random_state=0).rename(columns={'text': 'tokens', 'label': 'tags'})
    rows.to_json(tmp_path/'names.jsonl', orient='records', lines=True)
    res, report = _finetune(tmp_path, '--task', 'tag', '--data', tmp_path/'names.jsonl', '--epochs', 2)
    assert report['settings']['bs'] == 8 and report['settings']['lr'] == 5e-4 and report['learned_nothing'] is None, report['settings']
    split = TokenClassificationDataLoaders.from_source(tmp_path/'names.jsonl', resource_path('minilm'), seed=42, device='cpu')  # the run's split
    assert len(split.valid_df) == report['n_valid']
    vocab = split.vocab
    theirs = tool.reference(split.train_df, split.valid_df, vocab, bs=8, epochs=2, out=tmp_path/'ref')['entity_f1']
    # ftbook's reported score, recomputed outside ftbook: its exported model on the same words, scored by seqeval
    exported = AutoModelForTokenClassification.from_pretrained(tmp_path/'model')
    assert [exported.config.id2label[i] for i in range(len(vocab))] == vocab
    tok = AutoTokenizer.from_pretrained(resource_path('minilm'))
    plain = Trainer(model=exported, args=TrainingArguments(output_dir=str(tmp_path/'plain'), report_to=[], use_cpu=True), data_collator=DataCollatorForTokenClassification(tok))
    rescored, ours = tool.predicted_scores(plain, tool.encode_tagged(tok, split.valid_df, vocab), vocab)['entity_f1'], report['final']['entity_f1']
    assert abs(rescored - ours) < 1e-6, (rescored, ours)
    assert ours >= theirs - 0.02 and ours > 0.5, (ours, theirs)
