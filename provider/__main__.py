"""The mixpeek-infra component provider (the `Namespace` component as a Pulumi package).

The engine runs this directory as a plugin (PulumiPlugin.yaml); see
mixpeek_infra/component_provider.py for the schema and README.md ("Use from other Pulumi
languages") for the programs.
"""

from mixpeek_infra.component_provider import main

if __name__ == "__main__":
    main()
