"""The product's password hashing cost, seen from outside the suite.

tests/conftest.py makes this session hash with OWASP's minimum argon2id pair to save
CPU; this test checks, in a fresh interpreter that never loads the conftest, that the
product itself hashes (and makes its equal-cost dummy hash) with argon2-cffi's defaults
(RFC 9106 low-memory profile: t=3, m=64 MiB, p=4), as tenant/security/passwords.py says.
"""

import json
import subprocess
import sys
from pathlib import Path

from argon2 import extract_parameters

from tests.conftest import TEST_ARGON2

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import json
from tenant.security import passwords
print(json.dumps([passwords.hash_password("correct horse battery"), passwords.DUMMY_HASH]))
"""


def test_the_product_hashes_with_argon2_cffis_defaults_not_the_suites_cheaper_pair() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    for encoded in json.loads(done.stdout):
        params = extract_parameters(encoded)
        assert encoded.startswith("$argon2id$")
        assert (params.time_cost, params.memory_cost, params.parallelism) == (3, 65536, 4)
    assert tuple(TEST_ARGON2.values()) != (3, 65536, 4)  # the suite's pair really differs
