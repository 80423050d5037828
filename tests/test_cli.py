"""The commands end to end, in subprocesses, on small real subsets of the bundled data and the bundled MiniLM."""
import json, math, os, signal, subprocess, time
from pathlib import Path
import pandas as pd
import pytest
from conftest import BIN, assert_refused, run_cli

pytestmark = pytest.mark.xdist_group('cli')  # one worker runs this file: its module fixtures train once

@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    "One real run of the gradual recipe (gradual unfreezing + discriminative rates: every mechanism at once) on a subset, shared below"
    tmp = tmp_path_factory.mktemp('run')
    res = run_cli('ftbook-finetune', '--strategy', 'gradual', '--limit', 1000, '--epochs', 3, '--bs', 16, '--out', tmp/'model', '--report', tmp/'report.json')
    return tmp, res

def test_finetune_learns(trained):
    tmp, res = trained
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'Validation accuracy' in res.stdout and 'Model saved to' in res.stdout
    report = json.loads((tmp/'report.json').read_text())
    # chance is about 0.58 (share of fresh reviews); a real fine-tuned model is well above it
    assert report['final']['accuracy'] > 0.65, report['final']
    assert report['labels'] == ['fresh', 'rotten']
    assert report['settings']['group_col'] == 'movie_name' and report['settings']['strategy'] == 'gradual'

def test_gradual_report_shows_thawing_and_lr_ratios(trained):
    "The done-when of the unfreezing issue: trainable groups grow epoch by epoch, per-group LRs in the chosen ratio"
    tmp, _ = trained
    report = json.loads((tmp/'report.json').read_text())
    starts = [e['trainable_groups_at_start'] for e in report['epochs']]
    assert starts[0] == 1 and starts[-1] == 8 and starts == sorted(starts) and len(set(starts)) == 3, starts
    assert [e['trainable_groups'] for e in report['epochs']][-1] == 8
    top_peak = max(e['lr_peak'][-1] for e in report['epochs'])  # the one-cycle peak, sampled once per step
    assert abs(top_peak / 2e-4 - 1) < 1e-3, top_peak
    for e in report['epochs']:
        peak = e['lr_peak']
        assert len(peak) == len(report['groups']) == 8
        assert all(abs(lo / hi - 0.8) < 1e-6 for lo, hi in zip(peak[:-1], peak[1:])), peak

def test_saved_model_reloads_with_transformers_alone(trained):
    tmp, _ = trained
    from transformers import pipeline
    clf = pipeline('text-classification', model=str(tmp/'model'), device='cpu')
    out = clf(['An exhilarating, beautifully made film.', 'A dull, lifeless mess.'])
    assert {o['label'] for o in out} <= {'fresh', 'rotten'}
    assert (tmp/'model'/'model.safetensors').exists() and not list((tmp/'model').glob('*.bin'))

def test_predict_command(trained):
    tmp, _ = trained
    res = run_cli('ftbook-predict', tmp/'model', 'An exhilarating, beautifully made film.', 'A dull, lifeless mess.')
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 2
    labels = [l.split('\t')[0] for l in lines]
    assert labels == ['fresh', 'rotten'], lines
    res = run_cli('ftbook-predict', '--json-lines', tmp/'model', 'Fine.')
    row = json.loads(res.stdout)
    assert abs(row['fresh'] + row['rotten'] - 1) < 1e-5

def test_other_csv_with_column_options(tmp_path):
    "Any CSV of labelled texts works with --text-col/--label-col; empty texts are dropped with a count shown"
    import importlib.util
    from ftbook.core import rotten_tomatoes
    df = rotten_tomatoes().sample(800, random_state=0).rename(columns={'text': 'review', 'category': 'sentiment'})
    df = pd.concat([df[['review', 'sentiment']], pd.DataFrame({'review': ['', None], 'sentiment': ['fresh', 'rotten']})])
    df.to_csv(tmp_path/'reviews.csv', index=False)
    res = run_cli('ftbook-finetune', '--data', tmp_path/'reviews.csv', '--text-col', 'review', '--label-col', 'sentiment',
                  '--epochs', 1, '--bs', 16, '--out', tmp_path/'m')
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'Dropped 2 of 802 rows' in res.stderr
    assert (tmp_path/'m'/'config.json').exists()

def _write(path, text): path.write_text(text); return path
def _write_bytes(path, data): path.write_bytes(data); return path

def _fake_model(tmp, weights:bytes, name:str):
    "A model folder with MiniLM's config and tokenizer but the given weight file"
    import shutil
    from ftbook.core import resource_path
    folder = tmp/'stranger'
    shutil.copytree(resource_path('minilm'), folder, ignore=shutil.ignore_patterns('*.safetensors', '1_Pooling'))
    (folder/name).write_bytes(weights)
    return folder

def _half_weights():
    from ftbook.core import resource_path
    data = (resource_path('minilm')/'model.safetensors').read_bytes()
    return data[:len(data) // 2]  # a download cut short

BAD = {
    'missing file':   (lambda t: ['--data', t/'nope.csv'], 'does not exist'),
    'empty file':     (lambda t: ['--data', _write(t/'empty.csv', '')], 'is empty'),
    'wrong column':   (lambda t: ['--data', _write(t/'c.csv', 'review,stars\na,b\nc,d\n'), '--text-col', 'text', '--label-col', 'stars'],
                       'columns found: review, stars'),
    'one class':      (lambda t: ['--data', _write(t/'one.csv', 'text,label\na,x\nb,x\nc,x\n')], 'at least two classes'),
    'not a model':    (lambda t: ['--model', t], 'no config.json'),
    'lr zero':        (lambda t: ['--lr', 0], 'Learning rate is 0'),
    'zero epochs':    (lambda t: ['--epochs', 0], 'at least 1 epoch'),
    'bad strategy':   (lambda t: ['--strategy', 'yolo'], 'choose one of full, scratch'),
    'bad decay':      (lambda t: ['--decay', 1.5], 'use a factor in (0, 1]'),
    'max_len too long': (lambda t: ['--max-len', 4096, '--limit', 50], "above this model's limit of 512"),
    'not UTF-8':      (lambda t: ['--data', _write_bytes(t/'latin.csv', 'text,label\ncafé crème,a\nnaïve,b\n'.encode('latin-1'))], 'is not UTF-8 text'),
    'binary file':    (lambda t: ['--data', _write_bytes(t/'blob.csv', bytes(range(256)) * 4)], 'is a binary file'),
    'no usable text': (lambda t: ['--data', _write(t/'blank.csv', 'text,label\n,a\n   ,b\n,a\n')], 'No row has both a non-blank text'),
    'batch > data':   (lambda t: ['--limit', 40, '--bs', 64], 'larger than the 32 training rows'),
    'folder under a file': (lambda t: ['--checkpoints', _write(t/'file.txt', 'x')/'ckpt'], 'is a file, not a folder'),
    'pickled weights': (lambda t: ['--model', _fake_model(t, b'pickle bytes', 'pytorch_model.bin')], 'holds only pickled weights'),
    'damaged weights': (lambda t: ['--model', _fake_model(t, _half_weights(), 'model.safetensors'), '--limit', 50], 'is damaged'),
    'resume nothing': (lambda t: ['--resume', t], 'holds no ftbook-finetune checkpoint'),
    'bad monitor':    (lambda t: ['--monitor', 'acc'], "monitor is 'acc': choose one of valid_loss"),
    'schedule missing': (lambda t: ['--schedule', t/'nope.yaml'], 'Schedule file'),
    'schedule not YAML': (lambda t: ['--schedule', _write(t/'s.yaml', 'phases: [groups: [head]')], 'is not valid YAML or JSON'),
    'schedule unknown group': (lambda t: ['--schedule', _write(t/'s.yaml', 'phases:\n- groups: [head]\n- groups: [bert.encoder.layer.9]\n  epoch: 1\n'),
                               '--limit', 200], "names group 'bert.encoder.layer.9', which this model does not have"),
    'schedule after the end': (lambda t: ['--schedule', _write(t/'s.json', '[{"groups": ["head"]}, {"groups": [-2], "epoch": 2}]'),
                               '--limit', 200], 'but training has only'),
    'schedule with --unfreeze': (lambda t: ['--schedule', _write(t/'s.yaml', '- groups: [head]\n'), '--unfreeze', 'epoch'],
                                 '--schedule replaces --unfreeze and --until'),
    'schedule with last': (lambda t: ['--schedule', _write(t/'s.yaml', '- groups: [head]\n'), '--strategy', 'last'], "Strategy 'last'"),
    'unfreeze without gradual': (lambda t: ['--unfreeze', 'epoch'], "strategy 'discr' does not do: add --strategy gradual"),
}

@pytest.mark.parametrize('case', BAD, ids=list(BAD))
def test_bad_input_exits_2_with_one_line(case, tmp_path):
    args, msg = BAD[case]
    res = run_cli('ftbook-finetune', *args(tmp_path), '--out', tmp_path/'out', timeout=300)
    assert_refused(res, 'ftbook-finetune', msg, tmp_path/'out', tmp_path/'out-checkpoints')

PREDICT_BAD = {
    'label never seen': (lambda t: ['--data', _write(t/'l.csv', 'text,label\nA great film,fresh\nAwful,meh\n'), '--label-col', 'label'],
                         "Label 'meh' was never seen in training (the model knows 'fresh', 'rotten')"),
    'missing texts':    (lambda t: ['--data', _write(t/'n.csv', 'text,id\nGood,1\n,2\n')], "1 of 2 rows"),
    'label col, no data': (lambda t: ['--label-col', 'label'], '--label-col scores the model on a labelled file'),
    'binary data':      (lambda t: ['--data', _write_bytes(t/'b.csv', bytes(range(256)))], 'is a binary file'),
}

@pytest.mark.parametrize('case', PREDICT_BAD, ids=list(PREDICT_BAD))
def test_predict_bad_input_exits_2(trained, case, tmp_path):
    model = trained[0]/'model'
    args, msg = PREDICT_BAD[case]
    res = run_cli('ftbook-predict', model, *args(tmp_path))
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    errors = [l for l in res.stderr.splitlines() if l.startswith('ftbook-predict: error:')]
    assert len(errors) == 1 and msg in errors[0], res.stderr[-2000:]
    assert 'Traceback' not in res.stderr and res.stdout == ''

def test_predict_scores_a_labelled_file(trained, tmp_path):
    from ftbook.core import rotten_tomatoes
    rotten_tomatoes().sample(60, random_state=3).to_csv(tmp_path/'held_out.csv', index=False)
    res = run_cli('ftbook-predict', trained[0]/'model', '--data', tmp_path/'held_out.csv', '--label-col', 'category')
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.startswith('Accuracy ') and 'on 60 texts' in res.stdout

def test_predict_bad_model_folder(tmp_path):
    res = run_cli('ftbook-predict', tmp_path, 'hello')
    assert res.returncode == 2 and 'no config.json' in res.stderr

def test_lora_strategy_exports_merged_and_adapters(tmp_path):
    "--strategy lora: base weights stay frozen, the merged export reloads with transformers alone, the adapters alone with ftbook-predict"
    res = run_cli('ftbook-finetune', '--strategy', 'lora', '--limit', 600, '--epochs', 1, '--out', tmp_path/'merged',
                  '--report', tmp_path/'r.json')
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads((tmp_path/'r.json').read_text())
    assert report['settings']['lr'] == 1e-3 and report['strategy']['lora']
    assert report['epochs'][-1]['trainable_params'] < 0.02 * 22_713_216  # adapters and head: under 2% of MiniLM
    assert not (tmp_path/'merged'/'adapter_config.json').exists()
    from transformers import AutoModelForSequenceClassification
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path/'merged')
    assert not any('lora' in n for n, _ in model.named_parameters()) and model.config.id2label[0] == 'fresh'
    res = run_cli('ftbook-finetune', '--strategy', 'lora', '--limit', 600, '--epochs', 1, '--adapters-only',
                  '--out', tmp_path/'adapters')
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path/'adapters'/'adapter_config.json').exists()
    assert sum(f.stat().st_size for f in (tmp_path/'adapters').iterdir()) < 5 * 2**20
    res = run_cli('ftbook-predict', tmp_path/'adapters', 'A triumph.', '--json-lines')
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads(res.stdout.splitlines()[0])['label'] in ('fresh', 'rotten')


SCHEDULE = """phases:
  - groups: [head]
  - groups: [bert.encoder.layer.5, bert.encoder.layer.4]
    step: 7
    lr: 1.0e-4
  - params: ['encoder\\.layer\\.[0-3]\\.']
    epoch: 1
  - groups: [embeddings]
    fraction: 0.75
"""

def test_schedule_file_thaws_each_phase_at_the_step_it_asks_for(tmp_path):
    "--schedule: the report shows each phase's groups thawing at the step the file asked for, and its peak rate"
    res = run_cli('ftbook-finetune', '--schedule', _write(tmp_path/'phases.yaml', SCHEDULE), '--limit', 400, '--epochs', 2,
                  '--no-save', '--report', tmp_path/'r.json')
    assert res.returncode == 0, res.stderr[-3000:]
    r = json.loads((tmp_path/'r.json').read_text())
    steps_per_epoch = math.ceil(r['n_train'] / 32)  # batches of 32, the last one partial
    total = 2 * steps_per_epoch
    asked = [0, 7, steps_per_epoch, round(0.75 * total)]
    assert [t['asked_step'] for t in r['thaws']] == asked and [t['step'] for t in r['thaws']] == asked, r['thaws']
    assert [t['groups'] for t in r['thaws']] == [['head'], ['bert.encoder.layer.4', 'bert.encoder.layer.5'],
                                                 [f'bert.encoder.layer.{i}' for i in range(4)], ['embeddings']]
    first = r['first_trainable_step']  # as the ScheduleRecorder saw the run, step by step
    assert first == {'embeddings': asked[3], **{f'bert.encoder.layer.{i}': asked[2] for i in range(4)},
                     'bert.encoder.layer.4': 7, 'bert.encoder.layer.5': 7, 'head': 0}, first
    peak = [max(e['lr_peak'][i] for e in r['epochs']) for i in range(8)]
    assert peak[5] == peak[6] and 0.9e-4 < peak[5] <= 1e-4 and abs(peak[7] / 2e-4 - 1) < 0.05, peak  # its own rate; the head 2e-4
    assert abs(peak[4] / peak[7] - 0.9 ** 3) < 0.05, peak  # a group no phase gives a rate keeps the default recipe's ladder (decay 0.9)

HUB_ID = 'sentence-transformers/all-MiniLM-L6-v2'

@pytest.fixture(scope='module')
def hub_cache(tmp_path_factory):
    "The bundled MiniLM filed in a Hugging Face cache under its Hub id, as huggingface_hub lays out a download"
    from ftbook.core import add_to_hub_cache, resource_path
    cache = tmp_path_factory.mktemp('hub')
    add_to_hub_cache(resource_path('minilm'), HUB_ID, cache)
    return dict(HF_HUB_CACHE=str(cache))

def test_finetune_by_hub_id_from_the_offline_cache(hub_cache, tmp_path):
    res = run_cli('ftbook-finetune', '--model', HUB_ID, '--limit', 400, '--epochs', 1, '--no-save', '--report', tmp_path/'r.json', env=hub_cache)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads((tmp_path/'r.json').read_text())
    assert report['settings']['model'] == HUB_ID and len(report['groups']) == 8  # recorded as given; MiniLM's 8 groups
    from ftbook.schedule import DEFAULT_STRATEGY
    assert report['settings']['strategy'] == DEFAULT_STRATEGY == 'discr'  # no --strategy: the recipe the grid chose
    assert [e['trainable_groups_at_start'] for e in report['epochs']] == [8]  # discr: every group trains from the start
    assert report['settings']['decay'] == 0.9 and report['settings']['lr'] == 2e-4  # at the decay and rate the grid judged
    assert report['settings']['head_lr_mult'] == 10  # and the head rate the classification grid chose
    peak = report['epochs'][0]['lr_peak']
    assert all(abs(lo / hi - 0.9) < 1e-6 for lo, hi in zip(peak[:-2], peak[1:-1])), peak  # the body's ladder
    assert abs(peak[-1] / peak[-2] - 10 / 0.9) < 1e-6, peak  # the fresh head: ten times the top rate, the top block 0.9 of it

def test_adapters_name_the_hub_id_and_predict_resolves_it(hub_cache, tmp_path):
    res = run_cli('ftbook-finetune', '--model', f'{HUB_ID}@main', '--strategy', 'lora', '--adapters-only', '--limit', 400, '--epochs', 1,
                  '--out', tmp_path/'adapters', env=hub_cache)
    assert res.returncode == 0, res.stderr[-3000:]
    base = json.loads((tmp_path/'adapters'/'adapter_config.json').read_text())['base_model_name_or_path']
    assert base == f'{HUB_ID}@main' or base == HUB_ID, base  # portable: an id, not this machine's cache path
    res = run_cli('ftbook-predict', tmp_path/'adapters', 'A triumph.', '--json-lines', env=hub_cache)
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads(res.stdout)['label'] in ('fresh', 'rotten')

@pytest.mark.parametrize('cmd', ['ftbook-finetune', 'ftbook-predict'])
def test_hub_id_not_in_the_offline_cache_exits_2(hub_cache, cmd, tmp_path):
    args = ['--model', 'sentence-transformers/not-downloaded', '--out', tmp_path/'out'] if cmd == 'ftbook-finetune' else ['sentence-transformers/not-downloaded', 'Hi.']
    res = run_cli(cmd, *args, env=hub_cache)
    assert res.returncode == 2, res.stderr[-2000:]
    assert 'is neither a model folder nor in the Hugging Face cache' in res.stderr and 'HF_HUB_OFFLINE is set' in res.stderr
    assert 'Traceback' not in res.stderr and not (tmp_path/'out').exists()

def test_bench_runs_and_writes_json(tmp_path):
    "ftbook-bench end to end on a tiny budget: a table on screen, JSON with one row per contender and the ratios"
    out = tmp_path/'bench.json'
    res = run_cli('ftbook-bench', '--contenders', 'ftbook-gradual,plain-same,trainer', '--limit', '150', '--epochs', '1',
                  '--bs', '16', '--max-len', '32', '--repeats', '2', '--out', out)
    assert res.returncode == 0, res.stderr[-2000:]
    assert 'time_vs_plain' in res.stdout and 'plain-same' in res.stdout
    result = json.loads(out.read_text())
    rows = {r['contender']: r for r in result['rows']}
    assert set(rows) == {'ftbook-gradual', 'plain-same', 'trainer'}
    assert rows['plain-same']['time_vs_plain'] == 1.0
    assert all(r['seconds_per_epoch'] > 0 and 0 <= r['accuracy'] <= 1 for r in rows.values())
    from ftbook.bench import reset_peak_memory
    if reset_peak_memory('cpu'): assert all(r['peak_memory_mb'] > 100 for r in rows.values()), rows  # a model and its data
    else: assert all(r['peak_memory_mb'] is None for r in rows.values()), rows  # missing, not a stale peak
    assert result['settings']['n_train'] + result['settings']['n_valid'] == 150
    assert result['settings']['order'] == [['ftbook-gradual', 'plain-same', 'trainer'], ['plain-same', 'trainer', 'ftbook-gradual']]
    assert all(len(r['seconds_per_round']) == 2 and r['time_vs_plain_min'] <= r['time_vs_plain'] <= r['time_vs_plain_max'] for r in rows.values())
    assert rows['plain-same']['time_vs_plain_ci95'] == [1.0, 1.0]

def test_bench_refuses_an_unknown_contender(tmp_path):
    out = tmp_path/'bench.json'
    res = run_cli('ftbook-bench', '--contenders', 'nope', '--limit', '150', '--out', out)
    assert res.returncode == 2
    assert 'Unknown contender' in res.stderr and 'choose from' in res.stderr
    assert not out.exists()
    res = run_cli('ftbook-bench', '--repeats', '0', '--limit', '150', '--out', out)
    assert_refused(res, 'ftbook-bench', 'repeats is 0: run each contender at least once', out)


# ---- interruption and resume, with real signals sent to a real process

def _small_run(out, *more):  # gradual: the resumed run must also restore the unfreezing stage
    return ['--strategy', 'gradual', '--limit', 200, '--epochs', 3, '--bs', 16, '--max-len', 32, '--out', out, *more]

def _start(args):
    env = dict(os.environ, HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', PYTHONWARNINGS='ignore')
    return subprocess.Popen([str(BIN/'ftbook-finetune'), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

def _signal_once_training(proc, checkpoints:Path, sig):
    "Wait for the first step checkpoint (training is under way), then send `sig`"
    deadline = time.time() + 600
    while not (checkpoints/'latest'/'state.json').exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-2000:]
        time.sleep(0.05)
    proc.send_signal(sig)
    return proc.communicate(timeout=600)

def test_sigterm_saves_a_checkpoint_and_the_resumed_run_equals_the_uninterrupted_one(tmp_path):
    full = run_cli('ftbook-finetune', *_small_run(tmp_path/'a', '--report', tmp_path/'a.json'))
    assert full.returncode == 0, full.stderr[-3000:]
    assert 'texts reached the 32-token cap and were cut to fit' in full.stderr  # long texts: truncated, with a count
    proc = _start(_small_run(tmp_path/'b', '--save-every', 2))
    _, err = _signal_once_training(proc, tmp_path/'b-checkpoints', signal.SIGTERM)
    assert proc.returncode == 130, err[-3000:]
    assert 'Training stopped by SIGTERM' in err and 'checkpoint saved in' in err, err[-2000:]
    assert 'Traceback' not in err
    ckpt = tmp_path/'b-checkpoints'
    assert not [p for p in ckpt.iterdir() if p.name.startswith('.')]  # no temporary or half-written folder left
    assert not (tmp_path/'b').exists()  # an interrupted run exports no model
    state = json.loads((ckpt/'latest'/'state.json').read_text())
    assert state['reason'] == 'interrupt' and 0 < state['steps_done'] < 30, state['steps_done']
    resumed = run_cli('ftbook-finetune', '--resume', ckpt, '--out', tmp_path/'b', '--report', tmp_path/'b.json')
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = json.loads((tmp_path/'a.json').read_text()), json.loads((tmp_path/'b.json').read_text())
    assert b['final'] == a['final'], (a['final'], b['final'])
    metrics = lambda r: [(e['train_loss'], e['valid_loss'], e['accuracy'], e['f1_score']) for e in r['epochs']]
    assert metrics(b) == metrics(a)
    assert [e['trainable_groups_at_start'] for e in b['epochs']] == [e['trainable_groups_at_start'] for e in a['epochs']]
    assert b['checkpoints']['resumed_from']['steps_done'] == state['steps_done']
    assert (tmp_path/'b'/'model.safetensors').exists()

def test_ctrl_c_exits_130_with_a_checkpoint(tmp_path):
    proc = _start(_small_run(tmp_path/'m', '--save-every', 1))
    _, err = _signal_once_training(proc, tmp_path/'m-checkpoints', signal.SIGINT)
    assert proc.returncode == 130 and 'Training stopped by SIGINT' in err, err[-2000:]
    assert (tmp_path/'m-checkpoints'/'best').exists() or (tmp_path/'m-checkpoints'/'latest'/'model.safetensors').exists()

def test_nan_loss_stops_with_the_step_and_advice(tmp_path):
    res = run_cli('ftbook-finetune', '--limit', 160, '--epochs', 1, '--bs', 16, '--max-len', 32, '--lr', 1e12, '--out', tmp_path/'m')
    assert res.returncode == 1, res.stderr[-2000:]
    line = [l for l in res.stderr.splitlines() if l.startswith('ftbook-finetune: error:')][0]
    assert 'became nan at step' in line and 'lower learning rate' in line and 'Traceback' not in res.stderr
    assert not (tmp_path/'m').exists()

def test_grid_command_runs_judges_and_resumes(tmp_path):
    "ftbook-grid end to end: 4 real runs (Hamlet, 100 rows, 1 epoch, 2 seeds, 2 recipes, 2 at a time), a judgement line, nothing rerun"
    out = tmp_path/'grid.jsonl'
    args = ['--out', out, '--datasets', 'hamlet', '--sizes', 100, '--budgets', 1, '--seeds', 2, '--recipes', 'full,discr@5e-4']
    res = run_cli('ftbook-grid', *args, '--jobs', 2)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    assert sorted((r['recipe'], r['seed']) for r in rows) == [('discr', 0), ('discr', 1), ('full', 0), ('full', 1)]
    assert all(r['n_train'] == 100 and r['threads'] >= 1 for r in rows)
    judgement = res.stdout.strip().splitlines()[-1]
    assert judgement.startswith('discr@0.0005 vs full@0.0002 over 1 cells'), res.stdout
    again = run_cli('ftbook-grid', *args)  # everything is in the file: nothing runs, the same judgement
    assert again.returncode == 0 and again.stdout.strip() == judgement and len(out.read_text().splitlines()) == 4
    summary = run_cli('ftbook-grid', *args, '--summary-only')
    assert summary.returncode == 0 and summary.stdout.strip() == judgement

# ---- one settings object: --print-config, --config, the knobs (issue 25)
def test_print_config_then_config_reproduces_the_settings(tmp_path):
    "--print-config writes a file that --config reads back; the report's settings are the file's; flags override the file"
    printed = run_cli('ftbook-finetune', '--print-config', '--epochs', 1, '--limit', 300, '--bs', 16, '--precision', 'fp32', '--grad-accum', 2,
                      '--weight-decay', 0.05, '--warmup', 0.1, '--out', tmp_path/'MyRun', '--report', tmp_path/'r.json')
    assert printed.returncode == 0, printed.stderr[-2000:]
    assert not (tmp_path/'MyRun').exists()  # printing trains and writes nothing
    (tmp_path/'run.yaml').write_text(printed.stdout)
    res = run_cli('ftbook-finetune', '--config', tmp_path/'run.yaml', '--grad-checkpointing')
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"Model saved to {tmp_path/'MyRun'}" in res.stdout  # the path keeps its case
    import yaml
    wanted, report = yaml.safe_load(printed.stdout), json.loads((tmp_path/'r.json').read_text())
    got = report['settings']
    for k in ('epochs', 'limit', 'bs', 'grad_accum', 'weight_decay', 'warmup', 'lr', 'out', 'report', 'seed', 'max_len'):
        assert got[k] == wanted[k], (k, got[k], wanted[k])
    assert wanted['strategy'] is None and got['strategy'] == 'discr'  # null: the task family's recipe, known once the data shows the family
    assert got['grad_checkpointing'] is True and got['precision'] == 'fp32'
    saved = json.loads((tmp_path/'MyRun-checkpoints'/'run.json').read_text())
    assert saved['grad_accum'] == 2 and saved['grad_checkpointing'] is True
    # resuming the finished run reads the same settings back: a changed knob is refused, the same run re-exports
    again = run_cli('ftbook-finetune', '--resume', tmp_path/'MyRun-checkpoints', '--grad-accum', 4)
    assert_refused(again, 'ftbook-finetune', 'grad_accum is 4 but the run being resumed used 2')
    again = run_cli('ftbook-finetune', '--resume', tmp_path/'MyRun-checkpoints', '--report', tmp_path/'again.json')
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((tmp_path/'again.json').read_text())['final'] == report['final']

def test_an_old_run_json_resumes(tmp_path):
    "A checkpoint folder whose run.json was written before the settings object (21 keys, no knobs) still resumes"
    first = run_cli('ftbook-finetune', '--limit', 200, '--epochs', 1, '--bs', 16, '--out', tmp_path/'m', '--report', tmp_path/'a.json')
    assert first.returncode == 0, first.stderr[-3000:]
    run_json = tmp_path/'m-checkpoints'/'run.json'
    keys = ('data', 'text_col', 'label_col', 'group_col', 'model', 'strategy', 'decay', 'unfreeze', 'until', 'epochs', 'lr', 'bs', 'max_len',
            'limit', 'seed', 'valid_pct', 'schedule', 'task', 'label_delim', 'adapt_epochs', 'unlabelled')
    saved = json.loads(run_json.read_text())
    run_json.write_text(json.dumps({k: saved[k] for k in keys}, indent=1))  # what the code before this change wrote
    again = run_cli('ftbook-finetune', '--resume', tmp_path/'m-checkpoints', '--report', tmp_path/'b.json')
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((tmp_path/'b.json').read_text())['final'] == json.loads((tmp_path/'a.json').read_text())['final']
    assert json.loads((tmp_path/'b.json').read_text())['settings']['head_lr_mult'] == 1.0  # what a run.json without it trained with

def test_early_stopping_exports_the_best_epoch(tmp_path):
    "--patience: the report says which epoch was best; the exported model scores that epoch's validation loss"
    res = run_cli('ftbook-finetune', '--limit', 400, '--epochs', 4, '--bs', 16, '--strategy', 'full', '--lr', 1e-3, '--patience', 1,
                  '--out', tmp_path/'m', '--report', tmp_path/'r.json', '--no-checkpoints')
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads((tmp_path/'r.json').read_text())
    stop, losses = report['early_stopping'], [e['valid_loss'] for e in report['epochs']]
    assert stop['best_epoch'] == losses.index(min(losses)) and abs(stop['best'] - min(losses)) < 1e-6
    if stop['stopped_after_epoch'] is not None:
        assert len(losses) == stop['stopped_after_epoch'] + 1 < 4 and 'Stopped early after epoch' in res.stdout
    assert abs(report['final']['valid_loss'] - min(losses)) < 1e-6  # the final scores are the kept epoch's
    from ftbook.classify import TextClassifier
    assert TextClassifier.from_pretrained(tmp_path/'m').labels == ['fresh', 'rotten']
    exported = json.loads((tmp_path/'m'/'ftbook.json').read_text())['metrics']
    assert abs(exported['valid_loss'] - min(losses)) < 1e-6  # the export says what the weights it holds scored

KNOB_BAD = {
    'fp16 on the CPU':       (['--precision', 'fp16'], 'fp16 needs a CUDA GPU, and this run is on the CPU: use '),
    'unknown precision':    (['--precision', 'half'], 'choose one of auto, fp32, bf16, fp16'),
    'grad accum 0':         (['--grad-accum', 0], 'grad_accum is 0'),
    'warmup above 1':       (['--warmup', 1.5], 'warmup is 1.5'),
    'negative decay':       (['--weight-decay', -1], 'weight_decay is -1'),
    'patience too long':    (['--patience', 2, '--epochs', 2], 'early stopping could never act'),
    'lora rank, no lora':   (['--lora-r', 4], "--lora-r shapes LoRA adapters, which strategy 'discr' does not add"),
    'lora target unknown':  (['--strategy', 'lora', '--lora-targets', 'nope', '--limit', 100], "LoRA target 'nope' names no layer"),
    'head rate 0':          (['--head-lr-mult', 0], 'head_lr_mult is 0.0'),
    'class weights unknown': (['--class-weights', 'sqrt'], "class_weights is 'sqrt': use 'balanced'"),
    # multi-label found in the data, not given: refused once the data is read, before anything is written
    'class weights, multi-label data': (lambda t: ['--data', _write(t/'m.csv', 'text,labels\n' + ''.join(f'word {i},{"a|b" if i % 2 else "b"}\n' for i in range(40))),
                                                   '--label-col', 'labels', '--label-delim', '|', '--class-weights', 'balanced'],
                                        '--task multilabel has no classes to weigh'),
    'config missing':       (['--config', 'nope.yaml'], 'Config file nope.yaml does not exist'),
    'config unknown key':   (lambda t: ['--config', _write(t/'c.yaml', 'learning_rate: 1e-4\n')], "Unknown setting 'learning_rate' in c.yaml"),
    'config wrong type':    (lambda t: ['--config', _write(t/'c.yaml', 'epochs: three\n')], "epochs is 'three' in c.yaml: use a whole number"),
}

@pytest.mark.parametrize('case', KNOB_BAD, ids=list(KNOB_BAD))
def test_bad_settings_exit_2_with_one_line(case, tmp_path):
    args, msg = KNOB_BAD[case]
    args = args(tmp_path) if callable(args) else args
    res = run_cli('ftbook-finetune', *args, '--out', tmp_path/'out', timeout=300)
    assert_refused(res, 'ftbook-finetune', msg, tmp_path/'out', tmp_path/'out-checkpoints')

# ---- the rare-class options end to end (issue 27)
def test_class_weights_and_head_rate_train_end_to_end(tmp_path):
    "A classifier with --class-weights balanced and --head-lr-mult 10 on real reviews: it trains, the report records both, the head peaks at 10x the top block's rate over 0.9"
    res = run_cli('ftbook-finetune', '--limit', 160, '--epochs', 1, '--bs', 16, '--class-weights', 'balanced', '--head-lr-mult', 10,
                  '--no-save', '--no-checkpoints', '--report', tmp_path/'r.json')
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads((tmp_path/'r.json').read_text())
    assert report['settings']['class_weights'] == 'balanced' and report['settings']['head_lr_mult'] == 10
    peak = report['epochs'][0]['lr_peak']
    assert abs(peak[-1] / peak[-2] - 10 / 0.9) < 1e-6 and abs(peak[-2] / peak[-3] - 1 / 0.9) < 1e-6, peak
    assert 0 <= report['final']['accuracy'] <= 1

# ---- bf16 autocast on a CPU that computes it (issue 27: how the instruction-tuning grid runs on this machine)
def test_bf16_on_a_cpu_that_computes_it_trains_end_to_end(tmp_path):
    "--precision bf16 on the CPU: the run trains through CPUMixedPrecision, the report and the summary line say bf16, the saved weights stay float32"
    from ftbook.learner import cpu_has_bf16
    if not cpu_has_bf16(): pytest.skip('this processor does not compute bfloat16; the refusal is tested in 03_learner')
    res = run_cli('ftbook-finetune', '--precision', 'bf16', '--limit', 160, '--epochs', 1, '--bs', 16, '--no-checkpoints',
                  '--out', tmp_path/'model', '--report', tmp_path/'r.json')
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads((tmp_path/'r.json').read_text())
    assert report['settings']['precision'] == 'bf16' and report['settings']['device'] == 'cpu'
    assert 'cpu, bf16)' in res.stdout, res.stdout[-2000:]
    assert math.isfinite(report['epochs'][0]['valid_loss']) and 0 <= report['final']['accuracy'] <= 1
    from safetensors import safe_open
    with safe_open(str(tmp_path/'model'/'model.safetensors'), 'pt') as f:
        assert {str(f.get_tensor(k).dtype) for k in f.keys()} == {'torch.float32'}

# ---- a run that learned nothing says so (issue 27)
def test_learning_nothing_warns_once_and_is_reported(trained, tmp_path):
    "A tagger trained at a rate too small to move it (1e-7, real debate sentences) is no better than tagging every word 'O': one warning line naming that and what to try, and the report records it; the shared run that learned stays silent"
    tmp, res = trained
    assert 'learned nothing' not in res.stderr and json.loads((tmp/'report.json').read_text())['learned_nothing'] is None
    from ftbook.tag import debate_names
    debate_names().head(250)[['tokens', 'tags']].to_json(tmp_path/'names.jsonl', orient='records', lines=True)
    res = run_cli('ftbook-finetune', '--task', 'tag', '--data', tmp_path/'names.jsonl', '--epochs', 1, '--lr', 1e-7, '--max-len', 48,
                  '--no-save', '--no-checkpoints', '--report', tmp_path/'r.json')
    assert res.returncode == 0, res.stderr[-2000:]
    warned = [l for l in res.stderr.splitlines() if 'learned nothing' in l]
    assert len(warned) == 1 and warned[0].startswith('ftbook-finetune: warning: Validation '), res.stderr[-2000:]
    assert "no better than tagging every word 'O'" in warned[0] and '--epochs' in warned[0] and '--lr' in warned[0]
    report = json.loads((tmp_path/'r.json').read_text())
    assert report['settings']['bs'] == 8  # the tagging family's batch, no --bs given
    nothing = report['learned_nothing']
    assert nothing['predictor'] == "tagging every word 'O'" and set(nothing['scores']) <= {'entity_f1', 'word_accuracy'}
    assert all(nothing['scores'][m] is None or nothing['scores'][m] <= nothing['trivial'][m] + 0.005 for m in nothing['scores'])
