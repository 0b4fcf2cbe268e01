"""The book's helpers: how results are shown. Notebook parameters and run cards, chapter tables and
verdicts, plots, the execution status table and the papermill driver.

They read artifacts through the engine and never train anything the engine did not."""
