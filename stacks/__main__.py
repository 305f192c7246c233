"""The mixpeek-infra stack program: one Namespace per Create Namespace body in stack config.

See mixpeek_infra/program.py for the config it reads; stacks/Pulumi.dev.yaml and
stacks/Pulumi.prod.yaml are worked examples.
"""

from mixpeek_infra.program import run

run()
