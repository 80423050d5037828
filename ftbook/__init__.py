"ftbook: fine-tune Hugging Face transformers inside fastai. The modules are exported from nbs/ by nbdev."
# Not generated: this file only exposes the version, which settings.ini holds (setup.py puts it in the package metadata).
from importlib.metadata import PackageNotFoundError, version as _version
try: __version__ = _version('ftbook')
except PackageNotFoundError: __version__ = 'unknown'
