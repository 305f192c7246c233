// pulumi-resource-kubernetes built from the published provider module.
//
// The module's own main (cmd/pulumi-resource-kubernetes) embeds schema-embed.json and
// terraform-mapping-embed.json, which its `go generate` step writes from schema.json and
// terraform-mapping.json and which the module download does not contain. This main does the same
// with the module's schema.json (the version field set to the plugin version, as generate.go does):
// ../install copies this file and those two JSON files, renamed, into a build directory and builds
// there, so nothing generated is committed.
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var pulumiSchema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, pulumiSchema, terraformMapping)
}
