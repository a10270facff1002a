// Package pulumishim is copied by scripts/pulumi-toolchain.sh into a writable
// copy of the upstream Terraform Docker provider module so that the bridged
// Pulumi plugin can reach its (internal) SDKv2 provider constructor.
package pulumishim

import (
	"github.com/hashicorp/terraform-plugin-sdk/v2/helper/schema"

	"github.com/terraform-providers/terraform-provider-docker/internal/provider"
)

// NewProvider returns the upstream SDKv2 provider.
func NewProvider(version string) *schema.Provider {
	return provider.New(version)()
}
