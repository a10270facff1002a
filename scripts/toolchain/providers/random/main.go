// Command pulumi-resource-random is a Pulumi resource plugin that bridges the
// upstream Terraform random provider (plugin framework) with the Pulumi
// Terraform bridge. scripts/pulumi-toolchain.sh builds it when no official
// plugin binary can be downloaded. Type tokens follow the published
// @pulumi/random Node.js SDK (random:index/randomPassword:RandomPassword, ...).
package main

import (
	"context"
	"strings"

	pftfbridge "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	shim "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"

	"github.com/terraform-providers/terraform-provider-random/pulumishim"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "0.0.0-dev"

const pkg = "random"

// upperCamel turns "random_password" into "RandomPassword".
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

func providerInfo(ctx context.Context) tfbridge.ProviderInfo {
	p := pftfbridge.ShimProviderWithContext(ctx, pulumishim.NewProvider())
	info := tfbridge.ProviderInfo{
		P:           p,
		Name:        pkg,
		Version:     version,
		Resources:   map[string]*tfbridge.ResourceInfo{},
		DataSources: map[string]*tfbridge.DataSourceInfo{},
		// The plugin-framework bridge requires bridge metadata; an empty
		// document means no recorded aliases or renames.
		MetadataInfo: tfbridge.NewProviderMetadata([]byte("{}")),
	}
	p.ResourcesMap().Range(func(tf string, _ shim.Resource) bool {
		name := upperCamel(tf) // random_password -> RandomPassword
		info.Resources[tf] = &tfbridge.ResourceInfo{
			Tok: tokens.Type(pkg + ":index/" + strings.ToLower(name[:1]) + name[1:] + ":" + name),
		}
		return true
	})
	p.DataSourcesMap().Range(func(tf string, _ shim.Resource) bool {
		name := "get" + upperCamel(strings.TrimPrefix(tf, pkg+"_"))
		info.DataSources[tf] = &tfbridge.DataSourceInfo{
			Tok: tokens.ModuleMember(pkg + ":index/" + name + ":" + name),
		}
		return true
	})
	return info
}

func main() {
	ctx := context.Background()
	// A minimal package schema: the Node.js SDK is already generated and the
	// plugin needs no schema to create, diff, update or delete resources.
	schema := []byte(`{"name":"` + pkg + `","version":"` + version + `"}`)
	pftfbridge.Main(ctx, pkg, providerInfo(ctx), pftfbridge.ProviderMetadata{PackageSchema: schema})
}
