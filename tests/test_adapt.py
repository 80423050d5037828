"""Domain adaptation (ULMFiT's stage 2) through `ftbook-finetune --adapt-epochs`, in subprocesses, on the bundled task:
the encoder's masked LM is fine-tuned on the training texts and real unlabelled texts (the Rotten Tomatoes plot synopses)
before the classifier, nothing of a validation film is adapted on, and bad options are refused before anything is written."""
import json
from pathlib import Path
import pytest
from conftest import assert_refused, run_cli

pytestmark = pytest.mark.xdist_group('adapt')

@pytest.fixture(scope='module')
def plots(tmp_path_factory):
    "150 of the bundled data's 1,097 plot synopses, with their films: unlabelled texts of the domain"
    from ftbook.core import rotten_tomatoes
    df = rotten_tomatoes(include_plot=True)
    path = tmp_path_factory.mktemp('unlabelled')/'plots.csv'
    df[df.category == 'plot'][['text', 'movie_name']][:150].to_csv(path, index=False)
    return path

def test_adaptation_then_classifier(plots, tmp_path):
    scratch = tmp_path/'tmp'; scratch.mkdir()
    res = run_cli('ftbook-finetune', '--limit', 200, '--max-len', 64, '--epochs', 1, '--adapt-epochs', 1, '--unlabelled', plots, '--out', tmp_path/'model',
                  '--report', tmp_path/'report.json', env=dict(TMPDIR=str(scratch)))
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'Adapted the encoder on' in res.stdout
    report = json.loads((tmp_path/'report.json').read_text())
    a = report['adaptation']
    # the corpus: training reviews and the plots of every film not held out, each once
    assert report['n_train'] < a['n_texts'] < report['n_train'] + 150, a
    assert a['perplexity_after'] < a['perplexity_before'] and a['epochs'] == 1, a
    assert report['settings']['adapt_epochs'] == 1 and report['settings']['unlabelled'] == str(plots)
    saved = json.loads((tmp_path/'model-checkpoints'/'run.json').read_text())
    assert (saved['adapt_epochs'], saved['unlabelled']) == (1, str(plots))  # a resumed run knows how it started
    assert not list(scratch.glob('ftbook-adapted-*'))  # the adapted encoder's temporary folder is gone
    config = json.loads((tmp_path/'model'/'config.json').read_text())
    assert 'ftbook-adapted' not in json.dumps(config)  # the export does not name the temporary folder it was loaded from
    from transformers import pipeline
    assert pipeline('text-classification', model=str(tmp_path/'model'), device='cpu')('A tender, funny film.')[0]['label'] in ('fresh', 'rotten')
    # resuming the finished run skips the stage (the checkpoint holds the weights that grew from the adapted encoder): the unlabelled
    # file is not read again, and the run ends with the same scores
    unlabelled = Path(plots).read_text(); Path(plots).unlink()
    try: again = run_cli('ftbook-finetune', '--resume', tmp_path/'model-checkpoints', '--out', tmp_path/'model', '--report', tmp_path/'again.json')
    finally: Path(plots).write_text(unlabelled)
    assert again.returncode == 0 and 'Adapted the encoder' not in again.stdout, again.stderr[-3000:]
    resumed = json.loads((tmp_path/'again.json').read_text())
    assert abs(resumed['final']['accuracy'] - report['final']['accuracy']) < 1e-6 and resumed['settings']['adapt_epochs'] == 1

BAD = {
    'unlabelled without adaptation': (lambda t, p: ['--unlabelled', p], 'add --adapt-epochs N'),
    'adaptation of no weights': (lambda t, p: ['--adapt-epochs', 1, '--strategy', 'scratch'], 'which --strategy scratch does not use'),
    'negative epochs': (lambda t, p: ['--adapt-epochs', -1], '--adapt-epochs is -1'),
    'missing file': (lambda t, p: ['--adapt-epochs', 1, '--unlabelled', t/'nope.txt'], 'does not exist'),
    'no text column': (lambda t, p: ['--adapt-epochs', 1, '--unlabelled', (t/'u.csv').write_text('review\nnice\n') and t/'u.csv'],
                       "The text column 'text' is not in the data"),
}

@pytest.mark.parametrize('case', BAD, ids=list(BAD))
def test_bad_adaptation_input_exits_2_with_one_line(case, plots, tmp_path):
    args, msg = BAD[case]
    res = run_cli('ftbook-finetune', '--limit', 200, *args(tmp_path, plots), '--out', tmp_path/'out', timeout=300)
    assert_refused(res, 'ftbook-finetune', msg, tmp_path/'out', tmp_path/'out-checkpoints')
