// Command pulumi-language-go is a Go language host of this project's own: Pulumi's
// (github.com/pulumi/pulumi/sdk/go/pulumi-language-go/v3) is an untagged nested module that the
// module proxy the project's machines reach refuses ("403 Forbidden: This module version is not
// available"). See ../../README.md.
//
// Implemented: GeneratePackage (Pulumi's own Go SDK generator, pkg/v3/codegen/go, at the CLI's
// version: what `pulumi package gen-sdk --language go` uses), Run (`go build` of the program
// directory, or the prebuilt `binary` runtime option, run with the PULUMI_* environment the Go SDK
// reads), Link (a `replace` of the generated SDK's module path in the program's go.mod),
// GetRequiredPackages (none: Go programs name their packages in Pulumi.yaml `packages:`),
// GetPluginInfo, Handshake. Not implemented: program generation, templates, RunPlugin,
// InstallDependencies beyond `go mod download`.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"mixpeek-infra/tools/languages/hosts/internal/hostutil"

	gogen "github.com/pulumi/pulumi/pkg/v3/codegen/go"
	"github.com/pulumi/pulumi/pkg/v3/codegen/schema"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/emptypb"
)

const name = "pulumi-language-go"

func main() {
	hostutil.Main(name, func(engine string) pulumirpc.LanguageRuntimeServer { return &goHost{engine: engine} })
}

type goHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engine string
}

func (h *goHost) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

func (h *goHost) Handshake(context.Context, *pulumirpc.LanguageHandshakeRequest) (
	*pulumirpc.LanguageHandshakeResponse, error,
) {
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *goHost) GetRequiredPackages(context.Context, *pulumirpc.GetRequiredPackagesRequest) (
	*pulumirpc.GetRequiredPackagesResponse, error,
) {
	return &pulumirpc.GetRequiredPackagesResponse{}, nil
}

func (h *goHost) InstallDependencies(req *pulumirpc.InstallDependenciesRequest,
	server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	stdout, stderr := hostutil.InstallStreams(server)
	cmd := exec.CommandContext(server.Context(), "go", "mod", "download")
	cmd.Dir = req.GetInfo().GetProgramDirectory()
	cmd.Stdout, cmd.Stderr = stdout, stderr
	return cmd.Run()
}

func (h *goHost) GeneratePackage(ctx context.Context, req *pulumirpc.GeneratePackageRequest) (
	*pulumirpc.GeneratePackageResponse, error,
) {
	return hostutil.GeneratePackage(req, func(pkg *schema.Package, _ schema.ReferenceLoader) (map[string][]byte, error) {
		return gogen.GeneratePackage(name, pkg, req.LocalDependencies)
	})
}

func (h *goHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := req.GetInfo()
	if info == nil {
		return &pulumirpc.RunResponse{Error: "the engine sent no program info"}, nil
	}
	program, _ := info.GetOptions().AsMap()["binary"].(string)
	if program == "" {
		dir, err := os.MkdirTemp("", "pulumi-go-program-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		program = filepath.Join(dir, "program")
		build := exec.CommandContext(ctx, "go", "build", "-o", program, ".")
		build.Dir = info.ProgramDirectory
		if info.EntryPoint != "" && info.EntryPoint != "." {
			build.Dir = filepath.Join(build.Dir, info.EntryPoint)
		}
		if out, err := build.CombinedOutput(); err != nil {
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("go build in %s: %v\n%s", build.Dir, err, out)}, nil
		}
	} else if !filepath.IsAbs(program) {
		program = filepath.Join(info.RootDirectory, program)
	}
	env, err := hostutil.ConfigEnv(req)
	if err != nil {
		return nil, err
	}
	env = append(env,
		"PULUMI_MONITOR="+req.MonitorAddress, "PULUMI_ENGINE="+h.engine,
		"PULUMI_PROJECT="+req.Project, "PULUMI_STACK="+req.Stack, "PULUMI_ORGANIZATION="+req.Organization,
		"PULUMI_ROOT_DIRECTORY="+info.RootDirectory,
		fmt.Sprintf("PULUMI_DRY_RUN=%t", req.DryRun), fmt.Sprintf("PULUMI_PARALLEL=%d", req.Parallel))
	cmd := exec.CommandContext(ctx, program, req.Args...)
	cmd.Dir = req.Pwd
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return hostutil.RunResult(cmd.Run()), nil
}

// Link points the program's go.mod at each generated SDK (`replace <module> => ./<path>`).
func (h *goHost) Link(ctx context.Context, req *pulumirpc.LinkRequest) (*pulumirpc.LinkResponse, error) {
	dir := req.GetInfo().GetProgramDirectory()
	var imports []string
	for _, dep := range req.Packages {
		sdk := filepath.Join(dir, dep.Path)
		cmd := exec.CommandContext(ctx, "go", "mod", "edit", "-json")
		cmd.Dir = sdk
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("the generated SDK at %s has no go.mod: %w", dep.Path, err)
		}
		var mod struct{ Module struct{ Path string } }
		if err := json.Unmarshal(out, &mod); err != nil {
			return nil, err
		}
		rel := "./" + filepath.ToSlash(dep.Path)
		edit := exec.CommandContext(ctx, "go", "mod", "edit", "-replace", mod.Module.Path+"="+rel,
			"-require", mod.Module.Path+"@v0.0.0")
		edit.Dir = dir
		if out, err := edit.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go mod edit in %s: %w\n%s", dir, err, out)
		}
		imports = append(imports, mod.Module.Path)
	}
	return &pulumirpc.LinkResponse{ImportInstructions: "Import the package from " + strings.Join(imports, ", ")}, nil
}
