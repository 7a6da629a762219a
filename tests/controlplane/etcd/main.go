// Command etcd is the etcd server, built from go.etcd.io/etcd/server/v3 at the version
// Kubernetes 1.34 uses (kubeadm's DefaultEtcdVersion, hack/lib/etcd.sh). Built by
// hack/controlplane for the test control plane.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
