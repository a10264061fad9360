// Command pause is the pod sandbox process for the local real node: it holds
// the pod's namespaces open and exits cleanly when the kubelet stops the pod.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	go reapChildren()
	<-signals
}

// reapChildren collects zombies, as PID 1 of a shared PID namespace must.
func reapChildren() {
	children := make(chan os.Signal, 1)
	signal.Notify(children, syscall.SIGCHLD)
	for range children {
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
