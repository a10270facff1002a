// Command pulumi-resource-docker is a Pulumi resource plugin that bridges the
// upstream Terraform Docker provider (kreuzwerker) with the Pulumi Terraform
// bridge. scripts/pulumi-toolchain.sh builds it when no official plugin binary
// can be downloaded. Type tokens and property names follow the published
// @pulumi/docker Node.js SDK, so that SDK can drive this plugin.
//
// docker.Image, which is not a Terraform resource, is implemented natively in
// image.go on top of the docker CLI.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	shim "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim"
	shimv2 "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim/sdk-v2"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"

	"github.com/terraform-providers/terraform-provider-docker/pulumishim"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "0.0.0-dev"

const pkg = "docker"

// upperCamel turns "registry_image" into "RegistryImage".
func upperCamel(s string) string {
	var b strings.Builder
	for _, part := range strings.Split(s, "_") {
		if part == "" {
			continue
		}
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// Resource names whose Pulumi name differs from the Terraform one.
var resourceNames = map[string]string{
	"docker_image":  "RemoteImage",
	"docker_config": "ServiceConfig",
}

var dataSourceNames = map[string]string{
	"docker_image": "getRemoteImage",
}

func providerInfo() tfbridge.ProviderInfo {
	p := shimv2.NewProvider(pulumishim.NewProvider(version))

	info := tfbridge.ProviderInfo{
		P:       p,
		Name:    pkg,
		Version: version,
		Config: map[string]*tfbridge.SchemaInfo{
			"host": {
				Default: &tfbridge.DefaultInfo{
					Value:   "unix:///var/run/docker.sock",
					EnvVars: []string{"DOCKER_HOST"},
				},
			},
			"registry_auth": {Name: "registryAuth", MaxItemsOne: tfbridge.False()},
		},
		Resources:   map[string]*tfbridge.ResourceInfo{},
		DataSources: map[string]*tfbridge.DataSourceInfo{},
	}

	p.ResourcesMap().Range(func(tf string, _ shim.Resource) bool {
		name, ok := resourceNames[tf]
		if !ok {
			name = upperCamel(strings.TrimPrefix(tf, pkg+"_"))
		}
		info.Resources[tf] = &tfbridge.ResourceInfo{
			Tok: tokens.Type(pkg + ":index/" + lowerFirst(name) + ":" + name),
		}
		return true
	})
	p.DataSourcesMap().Range(func(tf string, _ shim.Resource) bool {
		name, ok := dataSourceNames[tf]
		if !ok {
			name = "get" + upperCamel(strings.TrimPrefix(tf, pkg+"_"))
		}
		info.DataSources[tf] = &tfbridge.DataSourceInfo{
			Tok: tokens.ModuleMember(pkg + ":index/" + name + ":" + name),
		}
		return true
	})

	// Property names that the published SDK spells differently from the
	// bridge's default (pluralising) naming.
	if r := info.Resources["docker_container"]; r != nil {
		r.DeleteBeforeReplace = true
		r.Fields = map[string]*tfbridge.SchemaInfo{
			"command":           {Name: "command"},
			"networks_advanced": {Name: "networksAdvanced"},
		}
	}
	if r := info.Resources["docker_image"]; r != nil {
		r.Fields = map[string]*tfbridge.SchemaInfo{"name": {Name: "name"}}
	}

	info.SetAutonaming(255, "-")
	return info
}

func main() {
	for _, arg := range os.Args[1:] {
		if arg == "-version" || arg == "--version" {
			fmt.Println(version)
			return
		}
	}
	ctx := context.Background()
	info := providerInfo()
	info.P.InitLogging(ctx)
	// No Pulumi package schema is embedded: the Node.js SDK is already
	// generated, and the bridge skips schema-based type checking without one.
	err := provider.Main(pkg, func(host *provider.HostClient) (pulumirpc.ResourceProviderServer, error) {
		bridged := tfbridge.NewProvider(ctx, host, pkg, version, info.P, info, nil)
		return &imageServer{ResourceProviderServer: bridged}, nil
	})
	if err != nil {
		cmdutil.ExitError(err.Error())
	}
}
