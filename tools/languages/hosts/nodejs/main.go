// Command pulumi-language-nodejs is the Node.js (TypeScript and JavaScript) language host this
// project builds where Pulumi's own cannot be had: its Go module
// (github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3) carries no tags and the
// module proxy the project's machines reach refuses every version of it, tags and commits alike
// ("403 Forbidden: This module version is not available"). See ../../README.md.
//
// It runs programs the way Pulumi's host does, with the program's own @pulumi/pulumi: `node
// <node_modules/@pulumi/pulumi/cmd/run> --monitor … --engine … --project … --stack … --pwd …
// [--dry-run] --parallel N --root-directory … <program> ARGS`, the config in PULUMI_CONFIG and
// PULUMI_CONFIG_SECRET_KEYS, TypeScript through ts-node (PULUMI_NODEJS_TYPESCRIPT, runtime
// option `typescript`, default true; `tsconfig` and `nodeargs` are honoured too).
//
// Implemented: Run, GetRequiredPackages (node_modules packages whose package.json says
// `pulumi.resource`), InstallDependencies (`npm install`), GeneratePackage (Pulumi's own
// TypeScript SDK generator, pkg/v3/codegen/nodejs, at the CLI's version: what `pulumi package
// gen-sdk --language nodejs` uses), Link (adds a generated SDK to package.json as a `file:`
// dependency and installs it: what `pulumi package add` uses), About, GetPluginInfo, Handshake.
// Not implemented (Unimplemented): program generation, templates, RunPlugin (Node.js plugins),
// Pack, yarn/pnpm/bun (npm only).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"mixpeek-infra/tools/languages/hosts/internal/hostutil"

	nodejsgen "github.com/pulumi/pulumi/pkg/v3/codegen/nodejs"
	"github.com/pulumi/pulumi/pkg/v3/codegen/schema"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/emptypb"
)

const name = "pulumi-language-nodejs"

func main() {
	hostutil.Main(name, func(engine string) pulumirpc.LanguageRuntimeServer {
		return &nodeHost{engine: engine}
	})
}

type nodeHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engine string
}

func (h *nodeHost) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

func (h *nodeHost) Handshake(context.Context, *pulumirpc.LanguageHandshakeRequest) (
	*pulumirpc.LanguageHandshakeResponse, error,
) {
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

// resolve asks node where a module resolves from `dir` (node's own lookup: node_modules upwards).
func resolve(ctx context.Context, dir, module string) (string, error) {
	cmd := exec.CommandContext(ctx, "node", "-e", "process.stdout.write(require.resolve(process.argv[1]))", module)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return "", fmt.Errorf("cannot resolve %s from %s (run npm install): %s", module, dir,
				strings.TrimSpace(string(exit.Stderr)))
		}
		return "", fmt.Errorf("cannot run node (is it on PATH?): %w", err)
	}
	return string(out), nil
}

func (h *nodeHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := req.GetInfo()
	if info == nil {
		return &pulumirpc.RunResponse{Error: "the engine sent no program info"}, nil
	}
	runPath := os.Getenv("PULUMI_LANGUAGE_NODEJS_RUN_PATH")
	if runPath == "" {
		found, err := resolve(ctx, info.ProgramDirectory, "@pulumi/pulumi/cmd/run")
		if err != nil {
			return &pulumirpc.RunResponse{Error: "It looks like the Pulumi SDK has not been installed: " + err.Error()}, nil
		}
		runPath = found
	}
	options := info.GetOptions().AsMap()
	var args []string
	if nodeargs, _ := options["nodeargs"].(string); nodeargs != "" {
		args = append(args, strings.Fields(nodeargs)...)
	}
	args = append(args, runPath,
		"--monitor", req.MonitorAddress, "--engine", h.engine,
		"--project", req.Project, "--stack", req.Stack, "--pwd", req.Pwd,
		"--parallel", fmt.Sprint(req.Parallel), "--root-directory", info.RootDirectory)
	if req.Organization != "" {
		args = append(args, "--organization", req.Organization)
	}
	if req.DryRun {
		args = append(args, "--dry-run")
	}
	program := info.ProgramDirectory
	if info.EntryPoint != "" && info.EntryPoint != "." {
		program = filepath.Join(program, info.EntryPoint)
	}
	args = append(append(args, program), req.Args...)

	env, err := hostutil.ConfigEnv(req)
	if err != nil {
		return nil, err
	}
	typescript := true
	if ts, ok := options["typescript"].(bool); ok {
		typescript = ts
	}
	env = append(env, fmt.Sprintf("PULUMI_NODEJS_TYPESCRIPT=%t", typescript))
	if tsconfig, _ := options["tsconfig"].(string); tsconfig != "" {
		env = append(env, "PULUMI_NODEJS_TSCONFIG_PATH="+tsconfig)
	}
	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.Dir = req.Pwd
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return hostutil.RunResult(cmd.Run()), nil
}

// packageJSON is what a package's package.json says about its Pulumi plugin.
type packageJSON struct {
	Name         string            `json:"name"`
	Version      string            `json:"version"`
	Dependencies map[string]string `json:"dependencies"`
	Pulumi       struct {
		Resource bool   `json:"resource"`
		Name     string `json:"name"`
		Version  string `json:"version"`
		Server   string `json:"server"`
	} `json:"pulumi"`
}

func (h *nodeHost) GetRequiredPackages(ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest) (
	*pulumirpc.GetRequiredPackagesResponse, error,
) {
	resp := &pulumirpc.GetRequiredPackagesResponse{}
	root := filepath.Join(req.GetInfo().GetProgramDirectory(), "node_modules")
	dirs, _ := filepath.Glob(filepath.Join(root, "*", "package.json"))
	scoped, _ := filepath.Glob(filepath.Join(root, "@*", "*", "package.json"))
	for _, path := range append(dirs, scoped...) {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		var pkg packageJSON
		if json.Unmarshal(data, &pkg) != nil || !pkg.Pulumi.Resource {
			continue
		}
		name := pkg.Pulumi.Name
		if name == "" {
			name = strings.TrimPrefix(strings.TrimPrefix(pkg.Name, "@pulumi/"), "@")
		}
		v := pkg.Pulumi.Version
		if v == "" {
			v = pkg.Version
		}
		if v != "" && !strings.HasPrefix(v, "v") {
			v = "v" + v
		}
		resp.Packages = append(resp.Packages, &pulumirpc.PackageDependency{
			Name: name, Kind: "resource", Version: v, Server: pkg.Pulumi.Server,
		})
	}
	return resp, nil
}

func (h *nodeHost) InstallDependencies(req *pulumirpc.InstallDependenciesRequest,
	server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	stdout, stderr := hostutil.InstallStreams(server)
	cmd := exec.CommandContext(server.Context(), "npm", "install", "--no-audit", "--no-fund")
	cmd.Dir = req.GetInfo().GetProgramDirectory()
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("npm install in %s: %w", cmd.Dir, err)
	}
	return nil
}

func (h *nodeHost) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	path, err := exec.LookPath("node")
	if err != nil {
		return nil, err
	}
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{Executable: path, Version: strings.TrimSpace(string(out))}, nil
}

func (h *nodeHost) GeneratePackage(ctx context.Context, req *pulumirpc.GeneratePackageRequest) (
	*pulumirpc.GeneratePackageResponse, error,
) {
	return hostutil.GeneratePackage(req, func(pkg *schema.Package, loader schema.ReferenceLoader) (map[string][]byte, error) {
		return nodejsgen.GeneratePackage(name, pkg, req.ExtraFiles, req.LocalDependencies, req.Local, loader)
	})
}

// Link adds each generated SDK to the program's package.json as a `file:` dependency and runs
// `npm install` (with --install-links, so the SDK is built and copied, not symlinked).
func (h *nodeHost) Link(ctx context.Context, req *pulumirpc.LinkRequest) (*pulumirpc.LinkResponse, error) {
	dir := req.GetInfo().GetProgramDirectory()
	var specs, names []string
	for _, dep := range req.Packages {
		data, err := os.ReadFile(filepath.Join(dir, dep.Path, "package.json"))
		if err != nil {
			return nil, fmt.Errorf("the generated SDK at %s has no package.json: %w", dep.Path, err)
		}
		var pkg packageJSON
		if err := json.Unmarshal(data, &pkg); err != nil {
			return nil, err
		}
		specs = append(specs, "file:"+filepath.ToSlash(dep.Path))
		names = append(names, pkg.Name)
	}
	sort.Strings(names)
	cmd := exec.CommandContext(ctx, "npm", append([]string{"install", "--no-audit", "--no-fund", "--install-links"},
		specs...)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("npm install %s in %s: %w\n%s", strings.Join(specs, " "), dir, err, out)
	}
	var lines []string
	for _, n := range names {
		lines = append(lines, fmt.Sprintf("import * as %s from \"%s\";", importName(n), n))
	}
	return &pulumirpc.LinkResponse{ImportInstructions: "Use the package in your program:\n\n  " +
		strings.Join(lines, "\n  ")}, nil
}

func importName(pkg string) string {
	base := pkg[strings.LastIndex(pkg, "/")+1:]
	return strings.NewReplacer("-", "", ".", "").Replace(base)
}
