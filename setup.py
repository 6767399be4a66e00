"""Only the optional C fast path of the SIP parser; everything else is in pyproject.toml.

`optional=True`: without a C compiler the install still succeeds and the pure-Python parser runs
alone (same results, slower); `make install` puts gcc and the Python headers there first.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "gateway.sip._speedups",
            ["gateway/sip/_speedups.c"],
            optional=True,
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ]
)
