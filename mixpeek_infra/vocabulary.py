"""Words shared by the core and the shells: id formats, Qdrant's vector vocabulary, default places and times."""

from __future__ import annotations

import re

NAMESPACE_ID = re.compile(r"ns_[0-9a-f]{10}")  # always fullmatch
NAMESPACE_ID_RULE = "'ns_' followed by 10 lowercase hex characters"

DISTANCES = ("cosine", "dot", "euclid", "manhattan")  # Qdrant's names, lower case
DATATYPES = ("float32", "float16", "uint8")
MULTIVECTOR_COMPARATORS = ("max_sim",)  # Qdrant's multivector_config comparators (late interaction: MaxSim)

DEFAULT_QDRANT_PATH = ".mixpeek/qdrant"  # embedded Qdrant Edge, relative to the project root
DEFAULT_RAY_STATE_DIR = ".mixpeek/ray"  # local Ray heads' records and logs
QDRANT_TIMEOUT = 10.0  # seconds one Qdrant operation may take, retries included
RAY_READY_TIMEOUT = 120.0  # seconds a local Ray head may take to accept clients
RAY_STOP_TIMEOUT = 20.0  # seconds a local Ray head may take to stop

STACK_PROJECT = "mixpeek-infra"  # the Pulumi project, so the prefix of its stack config keys
