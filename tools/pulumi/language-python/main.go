// Command pulumi-language-python is the Python language host this project builds for the Pulumi
// engine where Pulumi's own host cannot be had: its Go module
// (github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3) carries no tags, and the
// module proxy that the project's machines reach serves no version of it (`@v/list` answers
// "403 This module version is not available"). See ../README.md.
//
// It speaks the engine's LanguageRuntime gRPC protocol (pulumirpc, from the pulumi sdk/v3 module)
// and does what a Python language host must for `pulumi up/preview/refresh/destroy/install`:
//
//   - Run: start the SDK's own `pulumi-language-python-exec` (installed beside this binary) with
//     the project's virtualenv Python, passing the engine, monitor, project, stack, config and
//     secret config keys the way the SDK reads them (flags, PULUMI_CONFIG,
//     PULUMI_CONFIG_SECRET_KEYS), and creating the virtualenv first when it is missing;
//
//   - GetRequiredPackages: the resource plugins that installed Python packages declare in their
//     `pulumi-plugin.json`;
//
//   - InstallDependencies, About, GetProgramDependencies: through the SDK's Python toolchain
//     package (pip, poetry or uv, as `runtime.options.toolchain` says).
//
//   - RunPlugin: run a Python plugin from source (a directory with `PulumiPlugin.yaml` and
//     `__main__.py`, such as this project's component provider in provider/): `python <dir> ARGS`
//     with the plugin's virtualenv (`virtualenv` in PulumiPlugin.yaml, default `venv`, as
//     Pulumi's host defaults it), its output streamed back to the engine.
//
// It does not implement what this project does not use (program generation, templates, SDK
// generation for Python, Link/Pack, plugins run as buildable packages through
// `pulumi.run.plugin`): those answer Unimplemented.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// execScript is the SDK's program runner; tools/pulumi/install puts it beside this binary.
const execScript = "pulumi-language-python-exec"

// exitAfterUserMessage is the runner's exit code for "an error was already shown to the user".
const exitAfterUserMessage = 32

func main() {
	flag.String("tracing", "", "Emit tracing to a Zipkin-compatible tracing endpoint (ignored)")
	flag.String("root", "", "Project root path (the engine sends it in each request)")
	flag.String("binary", "", "Unused: Python programs are run from source")
	// Older engines (such as the one inside pulumi-language-yaml, built on pulumi v3.206) pass the
	// plugin's runtime options as flags too; the request's ProgramInfo carries them as well.
	for _, option := range []string{"toolchain", "virtualenv", "typechecker"} {
		flagOptions[option] = flag.String(option, "", "runtime option "+option+" (also read from each request)")
	}
	flag.Parse()
	logging.InitLogging(false, 0, false)

	args := flag.Args()
	if len(args) == 0 {
		fail("missing required engine RPC address argument")
	}
	self, err := os.Executable()
	if err != nil {
		fail("cannot locate this executable: %v", err)
	}
	host := &pythonHost{engine: args[0], exec: filepath.Join(filepath.Dir(self), execScript)}
	if _, err := os.Stat(host.exec); err != nil {
		fail("%s must sit beside %s (run tools/pulumi/install): %v", execScript, self, err)
	}

	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
	})
	if err != nil {
		fail("could not start the language host RPC server: %v", err)
	}
	fmt.Printf("%d\n", handle.Port) // The engine reads the port from the first line.
	go exitWithEngine(os.Getppid())
	if err := <-handle.Done; err != nil {
		fail("language host RPC stopped serving: %v", err)
	}
}

// exitWithEngine ends this host once its parent, the engine, is gone: an engine killed mid-update
// cannot stop its plugins, and each runs in a process group of its own.
func exitWithEngine(engine int) {
	for os.Getppid() == engine {
		time.Sleep(time.Second)
	}
	os.Exit(1)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pulumi-language-python: "+format+"\n", args...)
	os.Exit(1)
}

type pythonHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engine string
	exec   string
}

// flagOptions are the runtime options given as flags (see main).
var flagOptions = map[string]*string{}

// runtimeOptions are the request's runtime options, completed from the flags an older engine passes.
func runtimeOptions(info *pulumirpc.ProgramInfo) map[string]any {
	options := info.GetOptions().AsMap()
	for key, value := range flagOptions {
		if _, given := options[key]; !given && value != nil && *value != "" {
			options[key] = *value
		}
	}
	return options
}

// toolchainFor resolves pip/poetry/uv and the virtualenv from the program's runtime options.
func toolchainFor(info *pulumirpc.ProgramInfo) (toolchain.Toolchain, error) {
	if info == nil {
		return nil, errors.New("the engine sent no program info")
	}
	return toolchainWith(info, runtimeOptions(info))
}

func toolchainWith(info *pulumirpc.ProgramInfo, options map[string]any) (toolchain.Toolchain, error) {
	opts := toolchain.PythonOptions{Root: info.RootDirectory, ProgramDir: info.ProgramDirectory}
	if venv, ok := options["virtualenv"].(string); ok && venv != "" {
		opts.Virtualenv = venv
	}
	switch options["toolchain"] {
	case "pip":
		opts.Toolchain = toolchain.Pip
	case "poetry":
		opts.Toolchain = toolchain.Poetry
	case "uv":
		opts.Toolchain = toolchain.Uv
	case nil, "":
		opts.Toolchain = toolchain.Auto
	default:
		return nil, fmt.Errorf("runtime.options.toolchain: %v is not one of pip, poetry, uv", options["toolchain"])
	}
	return toolchain.ResolveToolchain(opts)
}

func (h *pythonHost) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

func (h *pythonHost) Handshake(context.Context, *pulumirpc.LanguageHandshakeRequest) (
	*pulumirpc.LanguageHandshakeResponse, error,
) {
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

// pluginScan prints, as JSON, the `pulumi-plugin.json` files of the installed distributions.
const pluginScan = `
import importlib.metadata as md, json, sys
found = []
for dist in md.distributions():
    for f in dist.files or ():
        if f.name == "pulumi-plugin.json":
            try:
                found.append(json.loads(f.read_text()))
            except Exception:
                pass
json.dump(found, sys.stdout)
`

func (h *pythonHost) GetRequiredPackages(ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest) (
	*pulumirpc.GetRequiredPackagesResponse, error,
) {
	tc, err := toolchainFor(req.Info)
	if err != nil {
		return nil, err
	}
	if tc.ValidateVenv(ctx) != nil {
		return &pulumirpc.GetRequiredPackagesResponse{}, nil // Run creates the virtualenv.
	}
	cmd, err := tc.Command(ctx, "-c", pluginScan)
	if err != nil {
		return nil, err
	}
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("listing the Pulumi plugins of installed Python packages: %w", err)
	}
	var plugins []struct {
		Resource bool   `json:"resource"`
		Name     string `json:"name"`
		Version  string `json:"version"`
		Server   string `json:"server"`
	}
	if err := json.Unmarshal(out, &plugins); err != nil {
		return nil, fmt.Errorf("reading pulumi-plugin.json files: %w", err)
	}
	resp := &pulumirpc.GetRequiredPackagesResponse{}
	for _, p := range plugins {
		if !p.Resource || p.Name == "" {
			continue
		}
		v := p.Version
		if v != "" && !strings.HasPrefix(v, "v") {
			v = "v" + v
		}
		resp.Packages = append(resp.Packages, &pulumirpc.PackageDependency{
			Name: p.Name, Kind: "resource", Version: v, Server: p.Server,
		})
	}
	return resp, nil
}

func (h *pythonHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	tc, err := toolchainFor(req.Info)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	// A missing virtualenv is created and filled from the project's requirements, as `pulumi install` would.
	if err := tc.EnsureVenv(ctx, req.Info.RootDirectory, false, true, os.Stdout, os.Stderr); err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	args := []string{"-u", h.exec,
		"--monitor", req.MonitorAddress, "--engine", h.engine,
		"--project", req.Project, "--stack", req.Stack, "--pwd", req.Pwd,
		"--parallel", fmt.Sprint(req.Parallel), "--dry_run", fmt.Sprint(req.DryRun),
		"--root_directory", req.Info.RootDirectory,
	}
	if req.Organization != "" {
		args = append(args, "--organization", req.Organization)
	}
	program := req.Info.ProgramDirectory
	if req.Info.EntryPoint != "" && req.Info.EntryPoint != "." {
		program = filepath.Join(program, req.Info.EntryPoint)
	}
	args = append(append(args, program), req.Args...)

	cmd, err := tc.Command(ctx, args...)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	config, err := json.Marshal(req.Config)
	if err != nil {
		return nil, err
	}
	secretKeys, err := json.Marshal(req.ConfigSecretKeys)
	if err != nil {
		return nil, err
	}
	cmd.Dir = req.Pwd
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, "PULUMI_CONFIG="+string(config), "PULUMI_CONFIG_SECRET_KEYS="+string(secretKeys))
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			if exit.ExitCode() == exitAfterUserMessage {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exit.ExitCode())}, nil
		}
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("Problem executing program (could not run language executor): %v", err)}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

func (h *pythonHost) InstallDependencies(req *pulumirpc.InstallDependenciesRequest,
	server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	tc, err := toolchainFor(req.Info)
	if err != nil {
		return err
	}
	stdout := &streamWriter{send: func(b []byte) error {
		return server.Send(&pulumirpc.InstallDependenciesResponse{Stdout: b})
	}}
	stderr := &streamWriter{send: func(b []byte) error {
		return server.Send(&pulumirpc.InstallDependenciesResponse{Stderr: b})
	}}
	return tc.InstallDependencies(server.Context(), req.Info.RootDirectory, req.UseLanguageVersionTools,
		true, stdout, stderr)
}

func (h *pythonHost) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	tc, err := toolchainFor(req.Info)
	if err != nil {
		return nil, err
	}
	info, err := tc.About(ctx)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{Executable: info.PythonExecutable, Version: info.PythonVersion.String()}, nil
}

func (h *pythonHost) GetProgramDependencies(ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest) (
	*pulumirpc.GetProgramDependenciesResponse, error,
) {
	tc, err := toolchainFor(req.Info)
	if err != nil {
		return nil, err
	}
	packages, err := tc.ListPackages(ctx, req.TransitiveDependencies)
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetProgramDependenciesResponse{}
	for _, p := range packages {
		resp.Dependencies = append(resp.Dependencies, &pulumirpc.DependencyInfo{Name: p.Name, Version: p.Version})
	}
	return resp, nil
}

// streamWriter forwards writes to a gRPC stream.
type streamWriter struct{ send func([]byte) error }

var _ io.Writer = (*streamWriter)(nil)

func (w *streamWriter) Write(p []byte) (int, error) {
	if err := w.send(append([]byte(nil), p...)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// RunPlugin runs a Python plugin from source: `python <plugin dir> ARGS` in the plugin's
// virtualenv, the way Pulumi's own host runs a bare plugin directory holding `__main__.py`.
func (h *pythonHost) RunPlugin(req *pulumirpc.RunPluginRequest, server pulumirpc.LanguageRuntime_RunPluginServer) error {
	info := req.GetInfo()
	if info == nil {
		return errors.New("the engine sent no plugin info")
	}
	if _, err := os.Stat(filepath.Join(info.ProgramDirectory, "__main__.py")); err != nil {
		return fmt.Errorf("plugin %s: only plugin directories holding __main__.py are supported: %w",
			info.ProgramDirectory, err)
	}
	// Like Pulumi's host: plugins never run in the ambient Python; pip defaults to ./venv.
	options := runtimeOptions(info)
	if venv, _ := options["virtualenv"].(string); venv == "" {
		if tc, _ := options["toolchain"].(string); tc == "" || tc == "pip" {
			options["virtualenv"] = "venv"
		}
	}
	tc, err := toolchainWith(info, options)
	if err != nil {
		return err
	}
	if err := tc.ValidateVenv(server.Context()); err != nil {
		return fmt.Errorf("plugin %s: %w (create it and install the plugin's requirements.txt into it)",
			info.ProgramDirectory, err)
	}
	cmd, err := tc.Command(server.Context(), append([]string{"-u", info.ProgramDirectory}, req.Args...)...)
	if err != nil {
		return err
	}
	closer, stdout, stderr, err := rpcutil.MakeRunPluginStreams(server, false)
	if err != nil {
		return err
	}
	defer closer.Close()
	cmd.Dir = req.Pwd
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, req.Env...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			if status, ok := exit.Sys().(syscall.WaitStatus); ok {
				return server.Send(&pulumirpc.RunPluginResponse{
					Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: int32(status.ExitStatus())}, //nolint:gosec
				})
			}
			return fmt.Errorf("plugin exited unexpectedly: %w", exit)
		}
		return fmt.Errorf("problem executing plugin program (could not run the plugin): %w", err)
	}
	return closer.Close()
}
