// Package pulumishim is copied by scripts/pulumi-toolchain.sh into a writable
// copy of the upstream Terraform random provider module so that the bridged
// Pulumi plugin can reach its (internal) plugin-framework provider.
package pulumishim

import (
	"github.com/hashicorp/terraform-plugin-framework/provider"

	upstream "github.com/terraform-providers/terraform-provider-random/internal/provider"
)

// NewProvider returns the upstream plugin-framework provider.
func NewProvider() provider.Provider {
	return upstream.New()
}
