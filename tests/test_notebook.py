"""course_lib.notebook: a lesson's first cell silences exactly the known notices, and nothing at import."""

import subprocess
import sys
import warnings

from course_lib.notebook import DEPRECATED_ALIAS, known_notices


def _warn_like_transformers():  # the text of transformers 5's modeling_utils warning
    warnings.warn("`is_gradient_checkpointing` is deprecated and will be removed in v6. Use "
                  "`is_activation_checkpointing` instead.", FutureWarning, stacklevel=1)


def test_known_notices_hides_the_deprecated_alias_and_nothing_else():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with known_notices():
            _warn_like_transformers()
            warnings.warn("something else is deprecated", FutureWarning, stacklevel=1)
        _warn_like_transformers()  # outside the block it shows again
    assert [str(w.message)[:27] for w in seen] == ["something else is deprecate", "`is_gradient_checkpointing`"]
    assert DEPRECATED_ALIAS.startswith(".*is_gradient_checkpointing")


def test_quiet_notebook_names_the_cpu_accelerator_and_silences_bitsandbytes():
    code = ("import logging, os, shutil; from course_lib.notebook import quiet_notebook; quiet_notebook(); "
            "print(os.environ.get('DS_ACCELERATOR'), shutil.which('nvidia-smi') is None, "
            "logging.getLogger('bitsandbytes').level == logging.ERROR)")
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    accelerator, no_gpu, quiet = out.stdout.split()
    assert quiet == "True" and accelerator == ("cpu" if no_gpu == "True" else "None")


def test_below_reads_the_same_for_every_rounding_level_value_under_its_bound():
    from course_lib.notebook import below

    assert below(4.9e-07, 1e-4) == below(3.3e-05, 1e-4) == "< 1e-04"
    assert below(2.5e-04, 1e-4) == "2.5e-04"  # a real difference shows
    assert below(float("nan"), 1e-4) == "nan"
    assert below(0.0, 1e-6) == "< 1e-06"
