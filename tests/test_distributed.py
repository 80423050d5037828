"""Data-parallel training end to end: `ftbook-finetune` under `accelerate launch` in 2 CPU processes (gloo)."""
import json, os, subprocess
import pytest
from conftest import BIN, run_cli

pytestmark = pytest.mark.xdist_group('distributed')  # one worker runs this file: its module fixture trains once

ARGS = ['--limit', 600, '--epochs', 2, '--seed', 0, '--strategy', 'gradual']

@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    "The same recipe in 1 process (batch 16) and in 2 processes (8 each: the same 16 per optimizer step)"
    tmp = tmp_path_factory.mktemp('ddp')
    one = run_cli('ftbook-finetune', *ARGS, '--bs', 16, '--no-save', '--report', tmp/'one.json')
    assert one.returncode == 0, one.stderr[-3000:]
    env = dict(os.environ, HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', PYTHONWARNINGS='ignore')
    cmd = [str(BIN/'accelerate'), 'launch', '--multi_gpu', '--num_processes', '2', '--num_machines', '1',
           '--mixed_precision', 'no', '--dynamo_backend', 'no', '--num_cpu_threads_per_process', '1', '--main_process_port', '29533',
           str(BIN/'ftbook-finetune'), *map(str, ARGS), '--bs', '8', '--out', str(tmp/'out'/'model'), '--report', str(tmp/'out'/'two.json')]
    two = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env, cwd=tmp)
    assert two.returncode == 0, two.stderr[-3000:]
    return tmp, json.loads((tmp/'one.json').read_text()), json.loads((tmp/'out'/'two.json').read_text()), two

def test_each_rank_sees_a_distinct_shard(runs):
    _, one, two, _ = runs
    d = two['distributed']
    assert d['world_size'] == 2 and d['n_train'] == one['n_train']
    assert d['covered'] == d['n_train']                      # together the ranks saw every training sample
    assert d['shared_samples'] <= 1                           # only the padding to an even split repeats
    assert abs(d['samples_per_rank'][0] - d['samples_per_rank'][1]) == 0

def test_gradients_are_averaged(runs):
    "Both ranks end with bit-identical weights: DDP averaged the gradients and applied the same update"
    _, _, two, _ = runs
    a, b = two['distributed']['weights_digests']
    assert a == b

def test_only_rank_0_writes(runs):
    tmp, _, _, res = runs
    assert sorted(p.name for p in (tmp/'out').iterdir()) == ['model', 'model-checkpoints', 'two.json']  # no second export, no temp folders
    assert sorted(p.name for p in (tmp/'out'/'model-checkpoints').iterdir()) == ['best', 'latest', 'run.json']  # one writer of checkpoints too
    assert res.stdout.count('Validation accuracy') == 1 and 'Trained in 2 processes.' in res.stdout

def test_quality_matches_one_process(runs):
    _, one, two, _ = runs
    assert two['final']['accuracy'] > 0.65
    assert abs(two['final']['accuracy'] - one['final']['accuracy']) < 0.06, (one['final'], two['final'])
    starts = [e['trainable_groups_at_start'] for e in two['epochs']]
    assert starts[0] < starts[-1] == 8                        # gradual unfreezing worked under DDP
