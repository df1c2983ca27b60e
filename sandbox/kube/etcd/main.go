// Command etcd is the etcd server, as the go.etcd.io/etcd/v3 module's own main runs it.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
