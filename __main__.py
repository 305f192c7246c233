"""The mixpeek-infra stack program: one Namespace per Create Namespace body in stack config.

See mixpeek_infra/program.py for the config it reads; stacks/Pulumi.dev.yaml and
stacks/Pulumi.prod.yaml are worked examples. The program sits at the project root, not under
stacks/: Pulumi's Python dynamic provider plugin resolves `virtualenv` against the program
directory while the language host resolves it against the project root (pulumi/pulumi#7061), so
only a program at the root lets both find `.venv`.
"""

from mixpeek_infra.program import run

run()
