// This file is this project's, not Pulumi's. tools/pulumi/install adds it to the package main of
// Pulumi's own pulumi-language-python (unpacked from shared/vendor) before building it; it is the
// only difference from Pulumi's source. See ../README.md, "The one difference".
//
// Engines up to about pulumi v3.2xx (the one inside pulumi-language-yaml v1.25.0 among them) start
// the language host of a plugin written in Python with the plugin's runtime options and its root
// as command-line flags: `-toolchain=pip -virtualenv=venv -root=DIR ENGINE_ADDRESS`. The host at
// this commit defines none of these flags, so Go's flag package rejects the command line and the
// host exits with status 2 before it serves. The same options also reach the host inside every
// request (ProgramInfo.options, RunPluginRequest.info), which is where the host reads them, so
// here they are only accepted and then ignored.

package main

import "flag"

func init() {
	for _, name := range []string{"root", "toolchain", "virtualenv", "typechecker"} {
		flag.String(name, "", "accepted for older engines and ignored: the value also arrives in each request")
	}
}
