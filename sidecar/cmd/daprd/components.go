package main

// The upstream daprd registers ~200 components behind the `stablecomponents`
// build tag, which pulls in every cloud SDK and takes a long time to compile
// on a small machine. FTE only ships components for the ones below, so the
// slim daprd registers exactly those. Add a component here before referencing
// a new type in components/*.yaml.

import (
	nrmdns "github.com/dapr/components-contrib/nameresolution/mdns"
	nrsqlite "github.com/dapr/components-contrib/nameresolution/sqlite"
	pubsubinmemory "github.com/dapr/components-contrib/pubsub/in-memory"
	pubsubredis "github.com/dapr/components-contrib/pubsub/redis"
	secretenv "github.com/dapr/components-contrib/secretstores/local/env"
	stateinmemory "github.com/dapr/components-contrib/state/in-memory"
	statepgv1 "github.com/dapr/components-contrib/state/postgresql/v1"
	statepgv2 "github.com/dapr/components-contrib/state/postgresql/v2"
	stateredis "github.com/dapr/components-contrib/state/redis"
	statesqlite "github.com/dapr/components-contrib/state/sqlite"
	"github.com/dapr/dapr/pkg/components"
	nrloader "github.com/dapr/dapr/pkg/components/nameresolution"
	pubsubloader "github.com/dapr/dapr/pkg/components/pubsub"
	secretloader "github.com/dapr/dapr/pkg/components/secretstores"
	stateloader "github.com/dapr/dapr/pkg/components/state"
)

func registerComponents() {
	stateloader.DefaultRegistry.RegisterComponent(statesqlite.NewSQLiteStateStore, "sqlite", "sqlite3")
	stateloader.DefaultRegistry.RegisterComponent(stateredis.NewRedisStateStore, "redis")
	stateloader.DefaultRegistry.RegisterComponent(stateinmemory.NewInMemoryStateStore, "in-memory")
	postgres := components.Versioning{
		Preferred: components.VersionConstructor{Version: "v2", Constructor: statepgv2.NewPostgreSQLStateStore},
		Others:    []components.VersionConstructor{{Version: "v1", Constructor: statepgv1.NewPostgreSQLStateStore}},
		Default:   "v1",
	}
	stateloader.DefaultRegistry.RegisterComponentWithVersions("postgresql", postgres)
	stateloader.DefaultRegistry.RegisterComponentWithVersions("postgres", postgres)

	pubsubloader.DefaultRegistry.RegisterComponent(pubsubinmemory.New, "in-memory")
	pubsubloader.DefaultRegistry.RegisterComponent(pubsubredis.NewRedisStreams, "redis")

	secretloader.DefaultRegistry.RegisterComponent(secretenv.NewEnvSecretStore, "local.env")

	// Self-hosted daprd defaults to mDNS; sqlite is the multicast-free option
	// selected in components/local/config.yaml.
	nrloader.DefaultRegistry.RegisterComponent(nrmdns.NewResolver, "mdns")
	nrloader.DefaultRegistry.RegisterComponent(nrsqlite.NewResolver, "sqlite")
}
