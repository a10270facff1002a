// Command pulumi-language-nodejs is a small Node.js language host for the
// Pulumi engine, built by scripts/pulumi-toolchain.sh when the official
// binary cannot be downloaded (the upstream host lives in a nested Go module
// that the module proxy does not serve).
//
// It implements the parts of the LanguageRuntime gRPC service that the engine
// needs to deploy a Node.js/TypeScript program: Run (launches the run script
// shipped in @pulumi/pulumi), GetRequiredPackages (scans node_modules for
// packages that declare a Pulumi resource plugin), InstallDependencies,
// RunPlugin, About, GetProgramDependencies and GetPluginInfo. Everything else
// answers Unimplemented, which the engine treats as "not supported".
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pbempty "google.golang.org/protobuf/types/known/emptypb"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "0.0.0-dev"

// exitCodeAlreadyReported is the exit code the Node.js run script uses when it
// has already shown the user an actionable error message.
const exitCodeAlreadyReported = 32

func main() {
	// Flags accepted by older engines; runtime options now arrive in ProgramInfo.
	_ = flag.String("tracing", "", "tracing endpoint (ignored)")
	_ = flag.String("root", "", "project root (ignored)")
	_ = flag.Bool("typescript", true, "legacy flag (ignored; use runtime options)")
	_ = flag.String("binary", "", "legacy flag (ignored)")
	_ = flag.String("nodeargs", "", "legacy flag (ignored; use runtime options)")
	_ = flag.String("tsconfig", "", "legacy flag (ignored; use runtime options)")
	flag.Parse()

	engineAddress := ""
	if flag.NArg() > 0 {
		engineAddress = flag.Arg(0)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if engineAddress != "" {
		// Stop when the engine goes away.
		go func() { _ = rpcutil.Healthcheck(ctx, engineAddress, 5*time.Minute, cancel) }()
	}

	stop := make(chan bool)
	go func() {
		<-ctx.Done()
		close(stop)
	}()

	host := &nodeHost{engineAddress: engineAddress}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: stop,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "fatal: could not start language host RPC server: %v\n", err)
		os.Exit(1)
	}

	// The engine reads the port from the first line of stdout.
	fmt.Printf("%d\n", handle.Port)

	if err := <-handle.Done; err != nil {
		fmt.Fprintf(os.Stderr, "fatal: language host RPC server stopped: %v\n", err)
		os.Exit(1)
	}
}

type nodeHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engineAddress string
}

// options are the runtime options from Pulumi.yaml (runtime.options).
type options struct {
	typescript     bool
	nodeArgs       []string
	tsconfig       string
	packageManager string
}

func parseOptions(info *pulumirpc.ProgramInfo) options {
	o := options{typescript: true}
	if info == nil || info.GetOptions() == nil {
		return o
	}
	m := info.GetOptions().AsMap()
	if v, ok := m["typescript"]; ok {
		switch t := v.(type) {
		case bool:
			o.typescript = t
		case string:
			o.typescript = t != "false"
		}
	}
	if v, ok := m["nodeargs"].(string); ok {
		o.nodeArgs = strings.Fields(v)
	}
	if v, ok := m["tsconfig"].(string); ok {
		o.tsconfig = v
	}
	if v, ok := m["packagemanager"].(string); ok {
		o.packageManager = v
	}
	return o
}

func nodeBinary() (string, error) {
	p, err := exec.LookPath("node")
	if err != nil {
		return "", errors.New("could not find `node` on PATH; install Node.js")
	}
	return p, nil
}

// resolveSDKScript finds a script shipped in @pulumi/pulumi (e.g. "cmd/run")
// as seen from dir, using Node's own module resolution.
func resolveSDKScript(node, dir, script string) (string, error) {
	cmd := exec.Command(node, "-e",
		"process.stdout.write(require.resolve(process.argv[1]))", "@pulumi/pulumi/"+script)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("could not find @pulumi/pulumi/%s from %s; "+
			"has `npm install` been run for this program? (%s)", script, dir, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

func programDir(info *pulumirpc.ProgramInfo, fallback string) string {
	if info != nil && info.GetProgramDirectory() != "" {
		return info.GetProgramDirectory()
	}
	if fallback != "" {
		return fallback
	}
	wd, _ := os.Getwd()
	return wd
}

func (h *nodeHost) GetPluginInfo(context.Context, *pbempty.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

func (h *nodeHost) Handshake(
	_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	if req.GetEngineAddress() != "" {
		h.engineAddress = req.GetEngineAddress()
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *nodeHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := req.GetInfo()
	dir := programDir(info, req.GetPwd())
	opts := parseOptions(info)

	node, err := nodeBinary()
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	runScript, err := resolveSDKScript(node, dir, "cmd/run")
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}

	entry := "."
	if info != nil && info.GetEntryPoint() != "" {
		entry = info.GetEntryPoint()
	} else if req.GetProgram() != "" {
		entry = req.GetProgram()
	}

	args := append([]string{}, opts.nodeArgs...)
	args = append(args, runScript)
	add := func(flagName, value string) {
		if value != "" {
			args = append(args, "--"+flagName+"="+value)
		}
	}
	add("monitor", req.GetMonitorAddress())
	add("engine", h.engineAddress)
	add("organization", req.GetOrganization())
	add("project", req.GetProject())
	add("stack", req.GetStack())
	add("pwd", dir)
	if info != nil {
		add("root-directory", info.GetRootDirectory())
	}
	if req.GetDryRun() {
		args = append(args, "--dry-run")
	}
	if req.GetParallel() > 0 {
		add("parallel", strconv.Itoa(int(req.GetParallel())))
	}
	args = append(args, entry)
	args = append(args, req.GetArgs()...)

	configJSON, err := json.Marshal(req.GetConfig())
	if err != nil {
		return nil, err
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	secretJSON, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, err
	}

	env := append(os.Environ(),
		"PULUMI_CONFIG="+string(configJSON),
		"PULUMI_CONFIG_SECRET_KEYS="+string(secretJSON),
		"PULUMI_NODEJS_TYPESCRIPT="+strconv.FormatBool(opts.typescript),
	)
	if opts.tsconfig != "" {
		env = append(env, "PULUMI_NODEJS_TSCONFIG_PATH="+opts.tsconfig)
	}

	cmd := exec.Command(node, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Exited() {
				if ws.ExitStatus() == exitCodeAlreadyReported {
					return &pulumirpc.RunResponse{Bail: true}, nil
				}
				return &pulumirpc.RunResponse{
					Error: fmt.Sprintf("Program exited with non-zero exit code: %d", ws.ExitStatus()),
				}, nil
			}
			return &pulumirpc.RunResponse{Error: "Program exited unexpectedly: " + exitErr.Error()}, nil
		}
		return &pulumirpc.RunResponse{Error: "Problem executing program (could not run language executor): " +
			err.Error()}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

// packageJSON holds the fields of package.json files that we look at.
type packageJSON struct {
	Name            string            `json:"name"`
	Version         string            `json:"version"`
	Dependencies    map[string]string `json:"dependencies"`
	DevDependencies map[string]string `json:"devDependencies"`
	Pulumi          *struct {
		Resource bool   `json:"resource"`
		Name     string `json:"name"`
		Version  string `json:"version"`
		Server   string `json:"server"`
	} `json:"pulumi"`
}

func readPackageJSON(path string) (*packageJSON, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var p packageJSON
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &p, nil
}

// findNodeModules returns the nearest node_modules directory at or above dir.
func findNodeModules(dir string) string {
	for d := dir; ; d = filepath.Dir(d) {
		nm := filepath.Join(d, "node_modules")
		if st, err := os.Stat(nm); err == nil && st.IsDir() {
			return nm
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// walkPackages calls fn for every package.json found in a node_modules tree,
// including scoped packages and nested node_modules.
func walkPackages(nodeModules string, fn func(dir string, pkg *packageJSON)) {
	seen := map[string]bool{}
	var visit func(nm string, depth int)
	visit = func(nm string, depth int) {
		if depth > 8 || seen[nm] {
			return
		}
		seen[nm] = true
		entries, err := os.ReadDir(nm)
		if err != nil {
			return
		}
		for _, e := range entries {
			name := e.Name()
			if strings.HasPrefix(name, ".") {
				continue
			}
			full := filepath.Join(nm, name)
			if strings.HasPrefix(name, "@") {
				scoped, err := os.ReadDir(full)
				if err != nil {
					continue
				}
				for _, s := range scoped {
					visitPkg(filepath.Join(full, s.Name()), fn, func(nested string) { visit(nested, depth+1) })
				}
				continue
			}
			visitPkg(full, fn, func(nested string) { visit(nested, depth+1) })
		}
	}
	visit(nodeModules, 0)
}

func visitPkg(dir string, fn func(string, *packageJSON), recurse func(string)) {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return
	}
	if pkg, err := readPackageJSON(filepath.Join(dir, "package.json")); err == nil {
		fn(dir, pkg)
	}
	if nested := filepath.Join(dir, "node_modules"); dirExists(nested) {
		recurse(nested)
	}
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func (h *nodeHost) requiredPlugins(info *pulumirpc.ProgramInfo, fallbackDir string) []*pulumirpc.PluginDependency {
	nm := findNodeModules(programDir(info, fallbackDir))
	if nm == "" {
		return nil
	}
	found := map[string]*pulumirpc.PluginDependency{}
	walkPackages(nm, func(_ string, pkg *packageJSON) {
		if pkg.Pulumi == nil || !pkg.Pulumi.Resource {
			return
		}
		name := pkg.Pulumi.Name
		if name == "" {
			name = strings.TrimPrefix(pkg.Name, "@pulumi/")
		}
		ver := pkg.Pulumi.Version
		if ver == "" {
			ver = pkg.Version
		}
		if ver != "" && !strings.HasPrefix(ver, "v") {
			ver = "v" + ver
		}
		key := name + "@" + ver
		if _, ok := found[key]; !ok {
			found[key] = &pulumirpc.PluginDependency{
				Name: name, Kind: "resource", Version: ver, Server: pkg.Pulumi.Server,
			}
		}
	})
	keys := make([]string, 0, len(found))
	for k := range found {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]*pulumirpc.PluginDependency, 0, len(keys))
	for _, k := range keys {
		out = append(out, found[k])
	}
	return out
}

func (h *nodeHost) GetRequiredPlugins(
	_ context.Context, req *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return &pulumirpc.GetRequiredPluginsResponse{Plugins: h.requiredPlugins(req.GetInfo(), req.GetPwd())}, nil
}

func (h *nodeHost) GetRequiredPackages(
	_ context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	plugins := h.requiredPlugins(req.GetInfo(), "")
	pkgs := make([]*pulumirpc.PackageDependency, 0, len(plugins))
	for _, p := range plugins {
		pkgs = append(pkgs, &pulumirpc.PackageDependency{
			Name: p.Name, Kind: p.Kind, Version: p.Version, Server: p.Server,
		})
	}
	return &pulumirpc.GetRequiredPackagesResponse{Packages: pkgs}, nil
}

func (h *nodeHost) GetProgramDependencies(
	_ context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	dir := programDir(req.GetInfo(), req.GetPwd())
	pkg, err := readPackageJSON(filepath.Join(dir, "package.json"))
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "could not read package.json: %v", err)
	}
	names := map[string]bool{}
	for n := range pkg.Dependencies {
		names[n] = true
	}
	if req.GetTransitiveDependencies() {
		for n := range pkg.DevDependencies {
			names[n] = true
		}
	}
	nm := findNodeModules(dir)
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	deps := make([]*pulumirpc.DependencyInfo, 0, len(sorted))
	for _, n := range sorted {
		ver := pkg.Dependencies[n]
		if ver == "" {
			ver = pkg.DevDependencies[n]
		}
		if nm != "" {
			if p, err := readPackageJSON(filepath.Join(nm, filepath.FromSlash(n), "package.json")); err == nil {
				ver = p.Version
			}
		}
		deps = append(deps, &pulumirpc.DependencyInfo{Name: n, Version: ver})
	}
	return &pulumirpc.GetProgramDependenciesResponse{Dependencies: deps}, nil
}

func (h *nodeHost) About(context.Context, *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	node, err := nodeBinary()
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("failed to run node --version: %w", err)
	}
	return &pulumirpc.AboutResponse{
		Executable: node,
		Version:    strings.TrimPrefix(strings.TrimSpace(string(out)), "v"),
	}, nil
}

// packageManagerCommand chooses npm, yarn, pnpm or bun, honouring the
// packagemanager runtime option and otherwise the lock file present.
func packageManagerCommand(dir string, opts options) []string {
	pm := opts.packageManager
	if pm == "" || pm == "auto" {
		switch {
		case fileExists(filepath.Join(dir, "yarn.lock")):
			pm = "yarn"
		case fileExists(filepath.Join(dir, "pnpm-lock.yaml")):
			pm = "pnpm"
		case fileExists(filepath.Join(dir, "bun.lockb")), fileExists(filepath.Join(dir, "bun.lock")):
			pm = "bun"
		default:
			pm = "npm"
		}
	}
	if pm == "npm" {
		return []string{"npm", "install", "--loglevel=error", "--no-audit", "--no-fund"}
	}
	return []string{pm, "install"}
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

func (h *nodeHost) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest, server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	dir := programDir(req.GetInfo(), req.GetDirectory())
	closer, stdout, stderr, err := rpcutil.MakeInstallDependenciesStreams(server, req.GetIsTerminal())
	if err != nil {
		return err
	}
	defer closer.Close()

	argv := packageManagerCommand(dir, parseOptions(req.GetInfo()))
	fmt.Fprintf(stdout, "Installing dependencies with %s...\n\n", argv[0])
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("`%s` failed in %s: %w", strings.Join(argv, " "), dir, err)
	}
	fmt.Fprintf(stdout, "Finished installing dependencies\n\n")
	return nil
}

func (h *nodeHost) RunPlugin(
	req *pulumirpc.RunPluginRequest, server pulumirpc.LanguageRuntime_RunPluginServer,
) error {
	dir := programDir(req.GetInfo(), req.GetPwd())
	opts := parseOptions(req.GetInfo())
	node, err := nodeBinary()
	if err != nil {
		return err
	}
	script := "cmd/run-plugin"
	if req.GetKind() == "analyzer" {
		script = "cmd/run-policy-pack"
	}
	scriptPath, err := resolveSDKScript(node, dir, script)
	if err != nil {
		return err
	}

	closer, stdout, stderr, err := rpcutil.MakeRunPluginStreams(server, false)
	if err != nil {
		return err
	}
	defer closer.Close()

	args := append([]string{}, opts.nodeArgs...)
	args = append(args, scriptPath)
	if req.GetKind() == "analyzer" {
		// run-policy-pack expects <engine-address> <program>.
		args = append(args, req.GetArgs()...)
		args = append(args, dir)
	} else {
		args = append(args, dir)
		args = append(args, req.GetArgs()...)
	}

	cmd := exec.Command(node, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), req.GetEnv()...)
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	code := int32(0)
	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) {
			return err
		}
		code = int32(exitErr.ExitCode())
	}
	return server.Send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: code}})
}
