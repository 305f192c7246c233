// The documented spotify_playlists_dev namespace from Go, through the generated Go SDK of the
// mixpeek-infra package (`pulumi package add ../../provider` writes it to sdks/ and points go.mod
// at it with a replace).
package main

import (
	"github.com/mixpeek/pulumi-mixpeek-infra/sdk/go/mixpeekinfra"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

func main() {
	pulumi.Run(func(ctx *pulumi.Context) error {
		yes, no := true, false
		description := "This namespace contains playlists from Spotify"
		multimodal, image := "multimodal_extractor_v1", "image_extractor_v1"
		path := ".mixpeek/qdrant"
		ns, err := mixpeekinfra.NewNamespace(ctx, "spotify_playlists_dev", &mixpeekinfra.NamespaceArgs{
			Request: mixpeekinfra.CreateNamespaceRequestArgs{
				NamespaceName:     "spotify_playlists_dev",
				Description:       &description,
				AutoCreateIndexes: &yes,
				FeatureExtractors: []mixpeekinfra.FeatureExtractorArgs{
					{FeatureExtractorId: &multimodal, FeatureExtractorName: "multimodal_extractor", Version: "v1"},
					{FeatureExtractorId: &image, FeatureExtractorName: "image_extractor", Version: "v1",
						Params: map[string]interface{}{"model": "siglip_base"}},
				},
				PayloadIndexes: []mixpeekinfra.PayloadIndexArgs{
					{FieldName: "metadata.title", Type: "text", IsProtected: &no, FieldSchema: map[string]interface{}{
						"type": "text", "tokenizer": "word", "min_token_len": 2, "max_token_len": 15, "lowercase": true}},
					{FieldName: "metadata.description", Type: "keyword", IsProtected: &no,
						FieldSchema: map[string]interface{}{"type": "keyword", "is_tenant": true}},
				},
			},
			Qdrant: &mixpeekinfra.QdrantTargetSpecArgs{Path: &path},
		})
		if err != nil {
			return err
		}
		// The Python stack's outputs, per namespace name.
		ctx.Export("spotify_playlists_dev", pulumi.Map{
			"namespace_id":         ns.NamespaceId,
			"vector_inference_map": ns.VectorInferenceMap,
			"infrastructure":       ns.Infrastructure,
			"namespace":            ns.Namespace,
		})
		return nil
	})
}
