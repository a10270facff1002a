package main

// A native implementation of docker:index/image:Image (the one resource of
// @pulumi/docker that is not a Terraform resource). It drives the `docker`
// CLI: `docker build`, optionally `docker push`, and `docker image inspect`.
//
// Inputs (as in the published SDK): imageName, build {context, dockerfile,
// args, target, platform, network, addHosts, builderVersion, cacheFrom
// {images}}, registry {server, username, password}, skipPush, buildOnPreview.
// Outputs: the inputs plus baseImageName, context, dockerfile, platform,
// registryServer, repoDigest (repo@sha256:... once pushed; the local image ID
// sha256:... when skipPush is set), and contextDigest (a hash of the build context
// honouring .dockerignore, used to rebuild when files change).
// Deleting the resource leaves the image and its tags in place.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

const imageToken = "docker:index/image:Image"

// inputKeys are the Image inputs, in the order diffs are reported.
var inputKeys = []string{"imageName", "build", "registry", "skipPush", "buildOnPreview"}

func unmarshalProps(s *structpb.Struct) (resource.PropertyMap, error) {
	return plugin.UnmarshalProperties(s, plugin.MarshalOptions{
		KeepUnknowns: true, KeepSecrets: true, KeepResources: true, SkipNulls: true,
	})
}

func marshalProps(m resource.PropertyMap) (*structpb.Struct, error) {
	return plugin.MarshalProperties(m, plugin.MarshalOptions{
		KeepUnknowns: true, KeepSecrets: true, KeepResources: true,
	})
}

func isImage(urn string) bool {
	return string(resource.URN(urn).Type()) == imageToken
}

// imageSpec is the decoded, fully known set of inputs.
type imageSpec struct {
	ImageName      string
	Context        string
	Dockerfile     string
	Args           map[string]string
	Target         string
	Platform       string
	Network        string
	AddHosts       []string
	BuilderVersion string
	CacheFrom      []string
	RegistryServer string
	RegistryUser   string
	RegistryPass   string
	SkipPush       bool
	BuildOnPreview bool
}

func str(m resource.PropertyMap, k string) string {
	v, ok := m[resource.PropertyKey(k)]
	if !ok {
		return ""
	}
	v = unwrapSecret(v)
	if v.IsString() {
		return v.StringValue()
	}
	return ""
}

func boolean(m resource.PropertyMap, k string) bool {
	v, ok := m[resource.PropertyKey(k)]
	if !ok {
		return false
	}
	v = unwrapSecret(v)
	return v.IsBool() && v.BoolValue()
}

func object(m resource.PropertyMap, k string) resource.PropertyMap {
	v, ok := m[resource.PropertyKey(k)]
	if !ok {
		return resource.PropertyMap{}
	}
	v = unwrapSecret(v)
	if v.IsObject() {
		return v.ObjectValue()
	}
	return resource.PropertyMap{}
}

func stringList(m resource.PropertyMap, k string) []string {
	v, ok := m[resource.PropertyKey(k)]
	if !ok {
		return nil
	}
	v = unwrapSecret(v)
	if !v.IsArray() {
		return nil
	}
	var out []string
	for _, e := range v.ArrayValue() {
		e = unwrapSecret(e)
		if e.IsString() {
			out = append(out, e.StringValue())
		}
	}
	return out
}

func unwrapSecret(v resource.PropertyValue) resource.PropertyValue {
	for v.IsSecret() {
		v = v.SecretValue().Element
	}
	return v
}

func decodeSpec(inputs resource.PropertyMap) imageSpec {
	build := object(inputs, "build")
	reg := object(inputs, "registry")
	s := imageSpec{
		ImageName:      str(inputs, "imageName"),
		Context:        str(build, "context"),
		Dockerfile:     str(build, "dockerfile"),
		Target:         str(build, "target"),
		Platform:       str(build, "platform"),
		Network:        str(build, "network"),
		AddHosts:       stringList(build, "addHosts"),
		BuilderVersion: str(build, "builderVersion"),
		CacheFrom:      stringList(object(build, "cacheFrom"), "images"),
		RegistryServer: str(reg, "server"),
		RegistryUser:   str(reg, "username"),
		RegistryPass:   str(reg, "password"),
		SkipPush:       boolean(inputs, "skipPush"),
		BuildOnPreview: boolean(inputs, "buildOnPreview"),
		Args:           map[string]string{},
	}
	for k, v := range object(build, "args") {
		v = unwrapSecret(v)
		if v.IsString() {
			s.Args[string(k)] = v.StringValue()
		}
	}
	if s.Context == "" {
		s.Context = "."
	}
	if s.Dockerfile == "" {
		s.Dockerfile = filepath.Join(s.Context, "Dockerfile")
	}
	if s.RegistryServer == "" {
		s.RegistryServer = registryOf(s.ImageName)
	}
	return s
}

// registryOf returns the registry host of an image reference, or docker.io.
func registryOf(name string) string {
	first, _, found := strings.Cut(name, "/")
	if found && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return first
	}
	return "docker.io"
}

// contextDigest hashes the build context (paths, modes and contents of the
// files that .dockerignore keeps) and the Dockerfile.
func contextDigest(contextDir, dockerfile string) (string, error) {
	var patterns []string
	if f, err := os.Open(filepath.Join(contextDir, ".dockerignore")); err == nil {
		patterns, err = ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("reading .dockerignore: %w", err)
		}
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return "", fmt.Errorf("parsing .dockerignore: %w", err)
	}
	h := sha256.New()
	err = filepath.WalkDir(contextDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(contextDir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if len(patterns) > 0 {
			ignored, err := pm.MatchesOrParentMatches(rel)
			if err != nil {
				return err
			}
			if ignored {
				if d.IsDir() && !pm.Exclusions() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%o\x00", rel, info.Mode())
		switch {
		case info.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			h.Write([]byte(target))
		}
		h.Write([]byte{0})
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hashing build context %s: %w", contextDir, err)
	}
	if b, err := os.ReadFile(dockerfile); err == nil {
		h.Write([]byte("\x00dockerfile\x00"))
		h.Write(b)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// dockerCmd runs the docker CLI, returning stdout; stderr is folded into errors.
func dockerCmd(ctx context.Context, env []string, stdin io.Reader, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.Is(err, exec.ErrNotFound) {
			return "", errors.New("the docker CLI was not found on PATH (needed by docker.Image)")
		}
		msg := strings.TrimSpace(errb.String())
		if errors.As(err, &ee) && msg != "" {
			return "", fmt.Errorf("docker %s: %s", args[0], msg)
		}
		return "", fmt.Errorf("docker %s: %w", args[0], err)
	}
	return out.String(), nil
}

// buildImage builds (and unless skipPush, pushes) the image, returning the
// repo digest.
func buildImage(ctx context.Context, s imageSpec, push bool) (string, error) {
	if s.ImageName == "" {
		return "", errors.New("imageName is required")
	}
	args := []string{"build", "--file", s.Dockerfile, "--tag", s.ImageName}
	keys := make([]string, 0, len(s.Args))
	for k := range s.Args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "--build-arg", k+"="+s.Args[k])
	}
	if s.Target != "" {
		args = append(args, "--target", s.Target)
	}
	if s.Platform != "" {
		args = append(args, "--platform", s.Platform)
	}
	if s.Network != "" {
		args = append(args, "--network", s.Network)
	}
	for _, h := range s.AddHosts {
		args = append(args, "--add-host", h)
	}
	for _, c := range s.CacheFrom {
		args = append(args, "--cache-from", c)
	}
	args = append(args, s.Context)

	var env []string
	switch s.BuilderVersion {
	case "BuilderV1":
		env = append(env, "DOCKER_BUILDKIT=0")
	case "BuilderBuildKit":
		env = append(env, "DOCKER_BUILDKIT=1")
	}
	if _, err := dockerCmd(ctx, env, nil, args...); err != nil {
		return "", err
	}

	if push {
		var pushEnv []string
		if s.RegistryUser != "" || s.RegistryPass != "" {
			cfg, err := os.MkdirTemp("", "pulumi-docker-config-")
			if err != nil {
				return "", err
			}
			defer os.RemoveAll(cfg)
			pushEnv = []string{"DOCKER_CONFIG=" + cfg}
			if _, err := dockerCmd(ctx, pushEnv, strings.NewReader(s.RegistryPass),
				"login", "--username", s.RegistryUser, "--password-stdin", s.RegistryServer); err != nil {
				return "", err
			}
		}
		if _, err := dockerCmd(ctx, pushEnv, nil, "push", s.ImageName); err != nil {
			return "", err
		}
	}

	out, err := dockerCmd(ctx, nil, nil, "image", "inspect", "--format", "{{json .}}", s.ImageName)
	if err != nil {
		return "", err
	}
	var inspected struct {
		ID          string   `json:"Id"`
		RepoDigests []string `json:"RepoDigests"`
	}
	if err := json.Unmarshal([]byte(out), &inspected); err != nil {
		return "", fmt.Errorf("parsing docker image inspect output: %w", err)
	}
	repo := s.ImageName
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	for _, d := range inspected.RepoDigests {
		if strings.HasPrefix(d, repo+"@") {
			return d, nil
		}
	}
	// Never pushed or pulled, so there is no registry digest: use the local
	// image ID, which `docker run`/docker.Container accept as an image
	// reference and which changes whenever the image is rebuilt.
	return inspected.ID, nil
}

// imageOutputs assembles the resource state.
func imageOutputs(inputs resource.PropertyMap, s imageSpec, digest, repoDigest string, known bool) resource.PropertyMap {
	out := inputs.Copy()
	out["baseImageName"] = resource.NewStringProperty(s.ImageName)
	out["context"] = resource.NewStringProperty(s.Context)
	out["dockerfile"] = resource.NewStringProperty(s.Dockerfile)
	out["registryServer"] = resource.NewStringProperty(s.RegistryServer)
	if s.Platform != "" {
		out["platform"] = resource.NewStringProperty(s.Platform)
	}
	if known {
		out["repoDigest"] = resource.NewStringProperty(repoDigest)
		out["contextDigest"] = resource.NewStringProperty(digest)
	} else {
		out["repoDigest"] = resource.MakeComputed(resource.NewStringProperty(""))
		out["contextDigest"] = resource.MakeComputed(resource.NewStringProperty(""))
	}
	return out
}

// imageServer serves docker.Image natively and everything else through the
// bridged Terraform provider.
type imageServer struct {
	pulumirpc.ResourceProviderServer
}

func (s *imageServer) Check(ctx context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	if !isImage(req.GetUrn()) {
		return s.ResourceProviderServer.Check(ctx, req)
	}
	news, err := unmarshalProps(req.GetNews())
	if err != nil {
		return nil, err
	}
	var failures []*pulumirpc.CheckFailure
	if v, ok := news["imageName"]; !ok || (unwrapSecret(v).IsString() && unwrapSecret(v).StringValue() == "") {
		failures = append(failures, &pulumirpc.CheckFailure{Property: "imageName", Reason: "imageName is required"})
	}
	return &pulumirpc.CheckResponse{Inputs: req.GetNews(), Failures: failures}, nil
}

func (s *imageServer) Diff(ctx context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	if !isImage(req.GetUrn()) {
		return s.ResourceProviderServer.Diff(ctx, req)
	}
	olds, err := unmarshalProps(req.GetOldInputs())
	if err != nil {
		return nil, err
	}
	if len(olds) == 0 {
		if olds, err = unmarshalProps(req.GetOlds()); err != nil {
			return nil, err
		}
	}
	oldState, err := unmarshalProps(req.GetOlds())
	if err != nil {
		return nil, err
	}
	news, err := unmarshalProps(req.GetNews())
	if err != nil {
		return nil, err
	}

	var changed []string
	detailed := map[string]*pulumirpc.PropertyDiff{}
	for _, k := range inputKeys {
		o, hasO := olds[resource.PropertyKey(k)]
		n, hasN := news[resource.PropertyKey(k)]
		if hasO != hasN || (hasN && (n.ContainsUnknowns() || !o.DeepEquals(n))) {
			changed = append(changed, k)
			kind := pulumirpc.PropertyDiff_UPDATE
			if !hasO {
				kind = pulumirpc.PropertyDiff_ADD
			} else if !hasN {
				kind = pulumirpc.PropertyDiff_DELETE
			}
			detailed[k] = &pulumirpc.PropertyDiff{Kind: kind, InputDiff: true}
		}
	}
	// Rebuild when the files in the build context changed.
	if len(changed) == 0 && !news.ContainsUnknowns() {
		spec := decodeSpec(news)
		if digest, err := contextDigest(spec.Context, spec.Dockerfile); err == nil {
			if str(oldState, "contextDigest") != digest {
				changed = append(changed, "build")
				detailed["build"] = &pulumirpc.PropertyDiff{Kind: pulumirpc.PropertyDiff_UPDATE, InputDiff: true}
			}
		}
	}
	if len(changed) == 0 {
		return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}, nil
	}
	return &pulumirpc.DiffResponse{
		Changes:         pulumirpc.DiffResponse_DIFF_SOME,
		Diffs:           changed,
		DetailedDiff:    detailed,
		HasDetailedDiff: true,
	}, nil
}

func (s *imageServer) apply(
	ctx context.Context, inputsPb *structpb.Struct, preview bool,
) (*structpb.Struct, error) {
	inputs, err := unmarshalProps(inputsPb)
	if err != nil {
		return nil, err
	}
	spec := decodeSpec(inputs)
	if preview && (inputs.ContainsUnknowns() || !spec.BuildOnPreview) {
		return marshalProps(imageOutputs(inputs, spec, "", "", false))
	}
	digest, err := contextDigest(spec.Context, spec.Dockerfile)
	if err != nil {
		return nil, err
	}
	repoDigest, err := buildImage(ctx, spec, !spec.SkipPush && !preview)
	if err != nil {
		return nil, err
	}
	return marshalProps(imageOutputs(inputs, spec, digest, repoDigest, true))
}

func (s *imageServer) Create(ctx context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	if !isImage(req.GetUrn()) {
		return s.ResourceProviderServer.Create(ctx, req)
	}
	props, err := s.apply(ctx, req.GetProperties(), req.GetPreview())
	if err != nil {
		return nil, err
	}
	inputs, _ := unmarshalProps(req.GetProperties())
	id := decodeSpec(inputs).ImageName
	if id == "" {
		id = "image"
	}
	return &pulumirpc.CreateResponse{Id: id, Properties: props}, nil
}

func (s *imageServer) Update(ctx context.Context, req *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	if !isImage(req.GetUrn()) {
		return s.ResourceProviderServer.Update(ctx, req)
	}
	props, err := s.apply(ctx, req.GetNews(), req.GetPreview())
	if err != nil {
		return nil, err
	}
	return &pulumirpc.UpdateResponse{Properties: props}, nil
}

func (s *imageServer) Read(ctx context.Context, req *pulumirpc.ReadRequest) (*pulumirpc.ReadResponse, error) {
	if !isImage(req.GetUrn()) {
		return s.ResourceProviderServer.Read(ctx, req)
	}
	// The image is not tracked after it has been built (as upstream).
	return &pulumirpc.ReadResponse{Id: req.GetId(), Properties: req.GetProperties(), Inputs: req.GetInputs()}, nil
}

func (s *imageServer) Delete(ctx context.Context, req *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	if !isImage(req.GetUrn()) {
		return s.ResourceProviderServer.Delete(ctx, req)
	}
	// Images and tags are left in place, as the official provider does.
	return &emptypb.Empty{}, nil
}
