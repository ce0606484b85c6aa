package broker

// DescribeCluster v0–1: the cluster ID, controller and brokers from the
// metadata image (the same view Metadata gives).

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) handleDescribeCluster(req *kmsg.DescribeClusterRequest) *kmsg.DescribeClusterResponse {
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	img := b.meta.Image()
	resp.ClusterID = img.ClusterID
	resp.ControllerID = img.ControllerID
	resp.EndpointType = req.EndpointType
	ids := make([]int, 0, len(img.Brokers))
	for id := range img.Brokers {
		ids = append(ids, int(id))
	}
	sort.Ints(ids)
	for _, id := range ids {
		br := img.Brokers[int32(id)]
		rb := kmsg.NewDescribeClusterResponseBroker()
		rb.NodeID, rb.Host, rb.Port, rb.Rack = br.NodeID, br.Host, br.Port, br.Rack
		resp.Brokers = append(resp.Brokers, rb)
	}
	return resp
}
