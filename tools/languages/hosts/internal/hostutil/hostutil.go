// Package hostutil is what this project's language hosts share: serving the LanguageRuntime gRPC
// service the way the engine expects (port on the first line of stdout, exit with the engine),
// SDK generation through Pulumi's own generators, and running a program's process.
package hostutil

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/pulumi/pulumi/pkg/v3/codegen/schema"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
)

// ExitAfterUserMessage is the SDKs' exit code for "an error was already shown to the user".
const ExitAfterUserMessage = 32

// Main parses the engine's flags, serves `host` and blocks; the engine address is the first argument.
func Main(name string, newHost func(engine string) pulumirpc.LanguageRuntimeServer) {
	flag.String("tracing", "", "Emit tracing to a Zipkin-compatible tracing endpoint (ignored)")
	flag.String("root", "", "Project root path (the engine sends it in each request)")
	flag.String("binary", "", "Unused")
	flag.Bool("typescript", true, "Unused: the runtime option `typescript` is read per request")
	// Older engines pass a plugin's runtime options as flags too; the requests carry them as well.
	for _, option := range []string{"nodeargs", "tsconfig", "packagemanager", "buildTarget"} {
		flag.String(option, "", "runtime option "+option+" (read from each request)")
	}
	flag.Parse()
	logging.InitLogging(false, 0, false)
	args := flag.Args()
	if len(args) == 0 {
		Fail(name, "missing required engine RPC address argument")
	}
	host := newHost(args[0])
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
	})
	if err != nil {
		Fail(name, "could not start the language host RPC server: %v", err)
	}
	fmt.Printf("%d\n", handle.Port) // The engine reads the port from the first line.
	go exitWithEngine(os.Getppid())
	if err := <-handle.Done; err != nil {
		Fail(name, "language host RPC stopped serving: %v", err)
	}
}

// exitWithEngine ends the host once its parent, the engine, is gone (a killed engine cannot stop it).
func exitWithEngine(engine int) {
	for os.Getppid() == engine {
		time.Sleep(time.Second)
	}
	os.Exit(1)
}

// Fail prints a message naming the host and exits 1.
func Fail(name, format string, args ...any) {
	fmt.Fprintf(os.Stderr, name+": "+format+"\n", args...)
	os.Exit(1)
}

// GeneratePackage binds the request's schema with the engine's schema loader and writes what
// `generate` (one of Pulumi's SDK generators) returns into the request's directory.
func GeneratePackage(req *pulumirpc.GeneratePackageRequest,
	generate func(pkg *schema.Package, loader schema.ReferenceLoader) (map[string][]byte, error),
) (*pulumirpc.GeneratePackageResponse, error) {
	client, err := schema.NewLoaderClient(req.LoaderTarget)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	loader := schema.NewCachedLoader(client)

	var spec schema.PackageSpec
	if err := json.Unmarshal([]byte(req.Schema), &spec); err != nil {
		return nil, err
	}
	pkg, diags, err := schema.BindSpec(spec, loader, schema.ValidationOptions{AllowDanglingReferences: true})
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GeneratePackageResponse{Diagnostics: plugin.HclDiagnosticsToRPCDiagnostics(diags)}
	if diags.HasErrors() {
		return resp, nil
	}
	files, err := generate(pkg, loader)
	if err != nil {
		return nil, err
	}
	for name, data := range files {
		out := filepath.Join(req.Directory, name)
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(out, data, 0o644); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// RunResult turns a finished program process into the engine's RunResponse.
func RunResult(err error) *pulumirpc.RunResponse {
	if err == nil {
		return &pulumirpc.RunResponse{}
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if exit.ExitCode() == ExitAfterUserMessage {
			return &pulumirpc.RunResponse{Bail: true}
		}
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exit.ExitCode())}
	}
	return &pulumirpc.RunResponse{Error: fmt.Sprintf("Problem executing program (could not run language executor): %v", err)}
}

// StreamWriter forwards writes to a gRPC stream (InstallDependencies output).
type StreamWriter struct{ Send func([]byte) error }

var _ io.Writer = (*StreamWriter)(nil)

func (w *StreamWriter) Write(p []byte) (int, error) {
	if err := w.Send(append([]byte(nil), p...)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// InstallStreams are stdout and stderr writers of an InstallDependencies stream.
func InstallStreams(server pulumirpc.LanguageRuntime_InstallDependenciesServer) (io.Writer, io.Writer) {
	return &StreamWriter{Send: func(b []byte) error {
			return server.Send(&pulumirpc.InstallDependenciesResponse{Stdout: b})
		}}, &StreamWriter{Send: func(b []byte) error {
			return server.Send(&pulumirpc.InstallDependenciesResponse{Stderr: b})
		}}
}

// ConfigEnv is the program's config the way every Pulumi SDK reads it.
func ConfigEnv(req *pulumirpc.RunRequest) ([]string, error) {
	config, err := json.Marshal(req.Config)
	if err != nil {
		return nil, err
	}
	secretKeys, err := json.Marshal(req.ConfigSecretKeys)
	if err != nil {
		return nil, err
	}
	return []string{"PULUMI_CONFIG=" + string(config), "PULUMI_CONFIG_SECRET_KEYS=" + string(secretKeys)}, nil
}
