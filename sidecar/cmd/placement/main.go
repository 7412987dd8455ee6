// Command placement is Dapr's actor placement service, built unchanged from
// the pinned github.com/dapr/dapr module so the project needs no prebuilt binary.
package main

import "github.com/dapr/dapr/cmd/placement/app"

func main() {
	app.Run()
}
