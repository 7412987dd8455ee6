// Command scheduler is Dapr's scheduler service (workflow timers and actor
// reminders), built unchanged from the pinned github.com/dapr/dapr module.
package main

import "github.com/dapr/dapr/cmd/scheduler/app"

func main() {
	app.Run()
}
