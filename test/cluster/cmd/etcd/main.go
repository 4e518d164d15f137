// Command etcd runs etcd's own server entry point from go.etcd.io/etcd/server/v3,
// so the rig stores its objects in the etcd that Kubernetes is tested against.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
