"""The book's helpers: how results are shown. Notebook parameters and run cards, chapter tables and
verdicts, plots, the execution status table and the papermill driver.

They read artifacts through the engine and never train anything the engine did not."""

import warnings

# tqdm.auto falls back to the text bar without ipywidgets, warning with this venv's absolute path, which would
# otherwise land in every executed notebook. Set here, before any book module imports the engine (and tqdm).
warnings.filterwarnings("ignore", message="IProgress not found")
