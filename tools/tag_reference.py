"""ftbook's tagger against transformers' own token-classification recipe (its run_ner example: each word's tag on its first sub-token,
`Trainer` + `DataCollatorForTokenClassification`) on the same model, data, split and epochs; one JSON line per run on stdout.

    FTBOOK_PATTERN=.cache/pattern python tools/tag_reference.py > nbs/grid/tag_reference.jsonl

Runs: ftbook at the tagging family's defaults (batch 8, top rate 5e-4) and at the defaults it had before (batch 32, 2e-4), and the
reference at Trainer's defaults (batch 8, rate 5e-5, linear decay) and at a batch of 32, on the WSJ sample's names (other grid
datasets by name: python tools/tag_reference.py wsj-pos).
"""
import contextlib, json, sys, time, warnings
warnings.filterwarnings('ignore')
from ftbook.cli import finetune
from ftbook.core import resource_path
from ftbook.grid import GRID_DATASETS
from ftbook.tag import TokenClassificationDataLoaders

EPOCHS, SEED = 3, 42

def encode_tagged(tok, rows, vocab):
    "transformers' run_ner encoding of `rows` (`words`, `tags`): each word's tag on its first sub-token, -100 on the others and on special tokens"
    from datasets import Dataset
    index, enc, labels = {t: i for i, t in enumerate(vocab)}, tok(rows['words'].tolist(), is_split_into_words=True, truncation=True, max_length=128), []
    for i, tags in enumerate(rows['tags']):
        ids = enc.word_ids(i)
        labels.append([-100 if w is None or (j and ids[j - 1] == w) else index[tags[w]] for j, w in enumerate(ids)])
    return Dataset.from_dict(dict(input_ids=enc['input_ids'], attention_mask=enc['attention_mask'], labels=labels))

def predicted_scores(trainer, data, vocab) -> dict:
    "Entity F1, precision, recall (seqeval itself, not ftbook) and word accuracy of `trainer`'s model on `data`, word by word"
    from seqeval.metrics import f1_score, precision_score, recall_score
    out, true, pred = trainer.predict(data), [], []
    for p, l in zip(out.predictions.argmax(-1), out.label_ids):
        keep = l != -100
        true.append([vocab[i] for i in l[keep]]); pred.append([vocab[i] for i in p[keep]])
    words = sum(map(len, true))
    return dict(entity_f1=float(f1_score(true, pred)), entity_precision=float(precision_score(true, pred)), entity_recall=float(recall_score(true, pred)),
                word_accuracy=sum(a == b for t, q in zip(true, pred) for a, b in zip(t, q)) / words)

def reference(train, valid, vocab, bs=8, epochs=EPOCHS, out='/tmp/ftbook-tag-reference'):
    "transformers' recipe at Trainer's defaults but the batch size, trained on `train`, scored on `valid`"
    from transformers import AutoModelForTokenClassification, AutoTokenizer, DataCollatorForTokenClassification, Trainer, TrainingArguments
    model = str(resource_path('minilm'))
    tok = AutoTokenizer.from_pretrained(model)
    args = TrainingArguments(output_dir=str(out), num_train_epochs=epochs, per_device_train_batch_size=bs, seed=SEED,
                             report_to=[], save_strategy='no', use_cpu=True)
    trainer = Trainer(model=AutoModelForTokenClassification.from_pretrained(model, num_labels=len(vocab)), args=args,
                      train_dataset=encode_tagged(tok, train, vocab), data_collator=DataCollatorForTokenClassification(tok))
    start = time.time()
    with contextlib.redirect_stdout(sys.stderr): trainer.train()  # Trainer prints its log lines: keep stdout for the results
    seconds = time.time() - start
    return dict(predicted_scores(trainer, encode_tagged(tok, valid, vocab), vocab), steps=trainer.state.global_step, seconds=round(seconds, 1))

def main(datasets=("wsj-names",)):
    for name in datasets:
        rows = GRID_DATASETS[name].build().rename(columns={'text': 'tokens', 'label': 'tags'})
        split = TokenClassificationDataLoaders.from_source(rows, resource_path('minilm'), seed=SEED, device='cpu')  # finetune's split
        for runner, bs, lr in [('ftbook', None, None), ('ftbook', 32, 2e-4), ('transformers', 8, 5e-5), ('transformers', 32, 5e-5)]:
            if runner == 'ftbook':
                _, rep = finetune(rows, task='tag', epochs=EPOCHS, seed=SEED, bs=bs, lr=lr, out=None, checkpoints=False, progress=False)
                bs, lr = rep['settings']['bs'], rep['settings']['lr']
                scores = {k: rep['final'][k] for k in ('entity_f1', 'entity_precision', 'entity_recall', 'word_accuracy')}
                scores.update(steps=EPOCHS * -(-rep['n_train'] // bs), seconds=rep['seconds'])
            else: scores = reference(split.train_df, split.valid_df, split.vocab, bs)
            print(json.dumps(dict(dataset=name, runner=runner, bs=bs, lr=lr, epochs=EPOCHS, n_train=len(split.train_df), n_valid=len(split.valid_df),
                                  **{k: round(v, 4) if isinstance(v, float) else v for k, v in scores.items()})), flush=True)

if __name__ == '__main__': main(*sys.argv[1:] and [tuple(sys.argv[1:])])
