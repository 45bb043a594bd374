"""The runtime checker of the test suite (tests/conftest.py installs it on every vos_jax module
through jaxtyping's import hook): beartype, with PEP 484's numeric tower (an int is a valid
float, as for a static checker)."""

from beartype import BeartypeConf, beartype

typechecker = beartype(conf=BeartypeConf(is_pep484_tower=True))
