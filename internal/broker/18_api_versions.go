package broker

// ApiVersions v0–3. A request at a newer version is answered by conn with a
// v0 body carrying UNSUPPORTED_VERSION and our ranges (KIP-511). The
// response header is always v0 (internal/wire).

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) handleApiVersions(req *kmsg.ApiVersionsRequest) *kmsg.ApiVersionsResponse {
	return b.apiVersions(req.Version)
}

func (b *Broker) apiVersions(version int16) *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(version)
	keys := make([]int, 0, len(apis))
	for k := range apis {
		keys = append(keys, int(k))
	}
	sort.Ints(keys)
	for _, k := range keys {
		r := apis[int16(k)].versions
		ak := kmsg.NewApiVersionsResponseApiKey()
		ak.ApiKey, ak.MinVersion, ak.MaxVersion = int16(k), r.Min, r.Max
		resp.ApiKeys = append(resp.ApiKeys, ak)
	}
	return resp
}
