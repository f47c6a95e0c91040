// kube-apiserver for Usher's tests: the release's own command, built from the k8s.io/kubernetes
// module (see ../go.mod and scripts/provision-envtest.sh).
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
