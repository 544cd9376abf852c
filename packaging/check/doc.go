// Command check validates Hookwire's packaging offline, for .ci/packaging:
//
//	check k8s FILE...      every document of rendered Kubernetes manifests
//	                       (helm template) decodes strictly into its typed
//	                       k8s.io/api object: an unknown or misspelt field, a
//	                       wrong type or a bad quantity is an error, as the
//	                       API server's schema validation would reject it;
//	                       plus the checks a schema cannot make (selectors
//	                       match their pod labels, probe and volume names exist).
//	check compose FILE     the compose file loads with compose-go (the
//	                       library behind `docker compose`), validated
//	                       against the Compose specification's schema.
//
// It is its own module so that the k8s.io and compose-go dependencies stay
// out of Hookwire's go.mod.
package main
