// Modules that the sandbox build (sandbox/build.py) takes files from rather than code, pinned with their checksums:
// Istio's CRDs (istio.io/api, kubernetes/customresourcedefinitions.gen.yaml). A module of its
// own, so that these pins never move the versions the binaries are built with.
module bluegreen.local/sandbox/assets

go 1.26

require istio.io/api v1.31.0-rc.0.0.20260824154656-b943409680a7

require (
	github.com/golang/protobuf v1.5.4 // indirect
	google.golang.org/genproto/googleapis/api v0.0.0-20251213004720-97cd9d5aeac2 // indirect
	google.golang.org/protobuf v1.36.11 // indirect
)
