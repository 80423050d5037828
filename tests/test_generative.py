"""The generative tasks end to end through the commands, in subprocesses, on small real subsets: `ftbook-finetune --task seq2seq`
(English -> French pairs of Debian's FreeDict dictionary, an encoder-decoder warm-started from the bundled MiniLM) and `--task sft`
(SmolLM2-135M-Instruct taught to judge Rotten Tomatoes reviews), `ftbook-predict` generating and scoring, resuming, and bad input."""
import json
from pathlib import Path
import pytest
from conftest import assert_refused, run_cli

pytestmark = pytest.mark.xdist_group('generative')  # one worker runs this file: its module fixtures train once

PROMPT = 'Is this movie review fresh (positive) or rotten (negative)? Answer with one word.\n\nReview: {}'

@pytest.fixture(scope='module')
def data(tmp_path_factory):
    from ftbook.core import rotten_tomatoes
    from ftbook.seq2seq import freedict_pairs
    tmp = tmp_path_factory.mktemp('data')
    pairs = freedict_pairs().sample(frac=1, random_state=0).rename(columns={'source': 'en', 'target': 'fr'})
    pairs[:400][['en', 'fr']].to_csv(tmp/'pairs.csv', index=False)
    pairs[400:440][['en', 'fr']].to_csv(tmp/'held_out.csv', index=False)
    reviews = rotten_tomatoes().sample(n=48, random_state=0)
    with open(tmp/'chats.jsonl', 'w') as f:
        for text, label in zip(reviews['text'], reviews['category']):
            f.write(json.dumps(dict(messages=[dict(role='user', content=PROMPT.format(text)), dict(role='assistant', content=label)])) + '\n')
    return tmp

@pytest.fixture(scope='module')
def seq2seq(data, tmp_path_factory):
    out = tmp_path_factory.mktemp('seq2seq')
    res = run_cli('ftbook-finetune', '--task', 'seq2seq', '--data', data/'pairs.csv', '--source-col', 'en', '--target-col', 'fr',
                  '--strategy', 'gradual', '--lr', 1e-3, '--epochs', 2, '--bs', 16, '--max-len', 12, '--out', out/'model', '--report', out/'report.json')
    assert res.returncode == 0, res.stderr[-3000:]
    return out, res, json.loads((out/'report.json').read_text())

def test_seq2seq_trains_and_reports_generated_scores(seq2seq):
    out, res, report = seq2seq
    f = report['final']
    assert report['task'] == 'seq2seq' and report['settings']['text_col'] == 'en' and report['settings']['label_col'] == 'fr'
    assert {'chrf', 'bleu', 'exact', 'n_generated', 'token_accuracy', 'perplexity'} <= set(f) and f['n_generated'] == 80, f
    assert 'Validation chrF' in res.stdout and 'on 80 pairs' in res.stdout, res.stdout
    meta = json.loads((out/'model'/'ftbook.json').read_text())
    assert (meta['task'], meta['source_col'], meta['target_col']) == ('seq2seq', 'en', 'fr')
    # 400 pairs for 2 epochs teach the warm-started model nothing that one constant word does not score (the seq2seq grid, 12_grid):
    # the run says so once, against the best constant target chosen on the training targets
    nothing = report['learned_nothing']
    assert nothing is not None and nothing['predictor'].startswith('writing ') and set(nothing['scores']) == {'chrf'}, nothing
    assert nothing['scores']['chrf'] <= nothing['trivial']['chrf'] + 0.5 and abs(nothing['scores']['chrf'] - f['chrf']) < 1e-9
    assert sum('learned nothing' in l for l in res.stderr.splitlines()) == 1, res.stderr[-2000:]

def test_seq2seq_predicts_scores_and_resumes(seq2seq, data):
    out, _, report = seq2seq
    res = run_cli('ftbook-predict', out/'model', 'house', 'red wine', '--num-beams', 3)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.rstrip('\n').split('\n')
    assert len(lines) == 2 and lines[0].endswith('\thouse') and lines[1].endswith('\tred wine'), res.stdout
    scored = run_cli('ftbook-predict', out/'model', '--data', data/'held_out.csv', '--text-col', 'en', '--label-col', 'fr')
    assert scored.returncode == 0 and scored.stdout.startswith('ChrF ') and 'on 40 pairs' in scored.stdout, (scored.stdout, scored.stderr[-2000:])
    again = run_cli('ftbook-finetune', '--resume', out/'model-checkpoints', '--out', out/'again', '--report', out/'again.json')
    assert again.returncode == 0, again.stderr[-3000:]
    b = json.loads((out/'again.json').read_text())['final']
    assert abs(b['chrf'] - report['final']['chrf']) < 1e-6 and abs(b['valid_loss'] - report['final']['valid_loss']) < 1e-6, (b, report['final'])

@pytest.fixture(scope='module')
def sft(data, tmp_path_factory):
    out = tmp_path_factory.mktemp('sft')
    res = run_cli('ftbook-finetune', '--task', 'sft', '--data', data/'chats.jsonl', '--strategy', 'lora', '--adapters-only', '--epochs', 1,
                  '--bs', 2, '--max-len', 128, '--out', out/'model', '--report', out/'report.json')
    assert res.returncode == 0, res.stderr[-3000:]
    return out, res, json.loads((out/'report.json').read_text())

def test_sft_trains_on_answers_and_predicts(sft, tmp_path):
    out, res, report = sft
    f = report['final']
    assert report['task'] == 'sft' and 'smollm2' in report['settings']['model'].lower(), report['settings']
    assert {'exact', 'first_word', 'n_generated', 'answer_accuracy', 'perplexity'} <= set(f) and f['n_generated'] == report['n_valid'], f
    assert 'Validation exact answers' in res.stdout and 'conversations' in res.stdout, res.stdout
    assert (out/'model'/'adapter_config.json').exists()
    res = run_cli('ftbook-predict', out/'model', PROMPT.format('A joyless, plodding mess.'), '--max-new-tokens', 4, '--json-lines')
    assert res.returncode == 0, res.stderr[-2000:]
    row = json.loads(res.stdout)
    assert row['prompt'].endswith('plodding mess.') and isinstance(row['answer'], str) and row['answer'], row
    (tmp_path/'q.csv').write_text('prompt,completion\n"' + PROMPT.format('A gem.') + '",fresh\n')
    scored = run_cli('ftbook-predict', out/'model', '--data', tmp_path/'q.csv', '--label-col', 'completion', '--max-new-tokens', 4)
    assert scored.returncode == 0 and scored.stdout.startswith('Exact answers') and 'on 1 prompts' in scored.stdout, (scored.stdout, scored.stderr[-2000:])

def test_sft_trains_its_grid_recipe_unless_told(data):
    "--task sft without --strategy: full fine-tuning at 1e-4 (the sft grid's choice); another recipe keeps its own rate"
    import yaml
    printed = run_cli('ftbook-finetune', '--task', 'sft', '--data', data/'chats.jsonl', '--print-config')
    assert printed.returncode == 0, printed.stderr[-2000:]
    s = yaml.safe_load(printed.stdout)
    assert (s['strategy'], s['lr'], s['epochs'], s['bs']) == ('full', 1e-4, 2, 32), s
    printed = run_cli('ftbook-finetune', '--task', 'sft', '--data', data/'chats.jsonl', '--strategy', 'discr', '--print-config')
    assert printed.returncode == 0, printed.stderr[-2000:]
    assert (yaml.safe_load(printed.stdout)['strategy'], yaml.safe_load(printed.stdout)['lr']) == ('discr', 2e-4)

def _write(path, text): path.write_text(text); return path

def _chats(path, *convs): return _write(path, ''.join(json.dumps(dict(messages=c)) + '\n' for c in convs))

U, A = (lambda t: dict(role='user', content=t)), (lambda t: dict(role='assistant', content=t))
BAD = {
    'sft without data':      (lambda t: ['--task', 'sft'], '--task sft needs conversations'),
    'no assistant turn':     (lambda t: ['--task', 'sft', '--data', _chats(t/'c.jsonl', [U('hi'), A('hello')], [U('hi again')])],
                              'Row 2 has no assistant turn'),
    'empty completion':      (lambda t: ['--task', 'sft', '--data', _write(t/'p.jsonl', '{"prompt": "Say hi", "completion": "hi"}\n{"prompt": "Say bye", "completion": ""}\n')],
                              'Row 2 has an empty completion'),
    'no chat template':      (lambda t: ['--task', 'sft', '--model', _minilm(), '--data', _chats(t/'c.jsonl', *[[U(f'q{i}'), A('a')] for i in range(20)])],
                              'This tokenizer has no chat template'),
    'empty target':          (lambda t: ['--task', 'seq2seq', '--data', _write(t/'s.csv', 'source,target\nhouse,maison\nwine, \n')],
                              "Row 2 has an empty target in 'target'"),
    'source col without seq2seq': (lambda t: ['--source-col', 'en'], '--source-col and --target-col name the texts of --task seq2seq'),
    'unfreeze with sft':     (lambda t: ['--task', 'sft', '--data', _chats(t/'c.jsonl', *[[U(f'q{i}'), A('a')] for i in range(20)]), '--unfreeze', 'epoch'],
                              "which strategy 'full' does not do"),
    'lora on a warm start':  (lambda t: ['--task', 'seq2seq', '--strategy', 'lora', '--data', _write(t/'s.csv', 'source,target\n' + ''.join(f'w{i},m{i}\n' for i in range(60)))],
                              'LoRA would freeze'),
}

def _minilm():
    from ftbook.core import resource_path
    return resource_path('minilm')

@pytest.mark.parametrize('case', BAD, ids=list(BAD))
def test_bad_generative_input_exits_2_with_one_line(case, tmp_path):
    args, msg = BAD[case]
    res = run_cli('ftbook-finetune', *args(tmp_path), '--out', tmp_path/'out', timeout=300)
    assert_refused(res, 'ftbook-finetune', msg, tmp_path/'out', tmp_path/'out-checkpoints')

def test_this_file_runs_on_one_worker(request):
    if getattr(request.config.option, 'loadgroup', False): assert request.node.nodeid.endswith('@generative'), request.node.nodeid
