"""Sphinx configuration of the API reference that `make docs` builds into build/docs.

The pages document the public modules only (janus_net, audit, handoff, platform, layout,
testing); everything they say comes from the docstrings, written in Google style
("Args:", "Returns:", "Raises:"), which napoleon turns into fields. The build runs with
warnings as errors, so a docstring that does not render is a failed build.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import janus_net  # noqa: E402  (after the path: the checkout's package, with its compiled shim)

project = "janus_net"
author = "janus_net developers"
release = version = janus_net.__version__
copyright = "janus_net developers"

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon"]
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# Members come from each module's __all__ where it has one (re-exported names included),
# in the order of the source; private names and undocumented members stay out.
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
add_module_names = False

# A docstring names code with single backquotes (`listen`, `Context`): show it as code.
default_role = "code"

html_theme = "alabaster"
html_title = f"janus_net {release} API"
html_static_path: list[str] = []
exclude_patterns: list[str] = []
