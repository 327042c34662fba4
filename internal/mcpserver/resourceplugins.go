package mcpserver

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
)

// Read-only tools of resource plugins: an agent learns which plugins the org
// has and the output keys a sandbox can wire with valueFrom.resource.

func (s *server) registerResourcePlugins(srv *mcp.Server, ro *mcp.ToolAnnotations) {
	mcp.AddTool(srv, &mcp.Tool{Name: "resourceplugin_list", Annotations: ro,
		Description: "List the org's resource plugins (e.g. a database schema per sandbox): runner image, create and delete steps, the sandboxes using each. " +
			"A sandbox names one in spec.resources[{name, plugin, params}] and reads its outputs with env valueFrom.resource {name, outputKey: <step>.<output>}."}, s.resourcePluginList)
	mcp.AddTool(srv, &mcp.Tool{Name: "resourceplugin_get", Annotations: ro,
		Description: "Get a resource plugin: its steps, their inputs (valueFromSandbox inputs are the params a sandbox passes), the output keys (<create step>.<output>) a sandbox can wire with valueFrom.resource, and the sandboxes using it."}, s.resourcePluginGet)
}

// ResourcePluginList is the answer of resourceplugin_list.
type ResourcePluginList struct {
	ResourcePlugins []client.ResourcePlugin `json:"resource_plugins"`
	// NextCursor continues the listing (pass it as cursor); empty on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

func (s *server) resourcePluginList(ctx context.Context, _ *mcp.CallToolRequest, in PageInput) (*mcp.CallToolResult, any, error) {
	pg, err := s.o.Client.ListResourcePluginsPage(ctx, s.o.Org, in.options())
	if err != nil {
		return nil, nil, s.agentError(err, "list resource plugins")
	}
	return nil, ResourcePluginList{ResourcePlugins: pg.Items, NextCursor: pg.Continue}, nil
}

// ResourcePluginView is the answer of resourceplugin_get: the plugin and the
// output keys a sandbox can wire.
type ResourcePluginView struct {
	client.ResourcePlugin
	// OutputKeys are the values valueFrom.resource.outputKey accepts.
	OutputKeys []string `json:"output_keys"`
}

func (s *server) resourcePluginGet(ctx context.Context, _ *mcp.CallToolRequest, in NameInput) (*mcp.CallToolResult, any, error) {
	rp, err := s.o.Client.GetResourcePlugin(ctx, s.o.Org, in.Name)
	if err != nil {
		return nil, nil, s.agentError(err, "get resource plugin "+in.Name)
	}
	v := ResourcePluginView{ResourcePlugin: *rp, OutputKeys: []string{}}
	for _, st := range rp.Spec.Create {
		for _, o := range st.Outputs {
			v.OutputKeys = append(v.OutputKeys, st.Name+"."+o.Name)
		}
	}
	return nil, v, nil
}
