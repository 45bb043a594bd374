"""Training configs shipped with the package: `<family>_<dataset>.py`, each with
`get_config(arg=None)` (ml_collections), its launch command in its docstring and a `runlocal`
switch. Commands take a path (`vos_jax/configs/feelvos_davis17.py:runlocal`) or, from any
folder, just the file name (`feelvos_davis17.py:runlocal`): see `vos_jax.config_files`."""
