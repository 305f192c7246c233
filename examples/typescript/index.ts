// The documented spotify_playlists_dev namespace from TypeScript, through the generated SDK of the
// mixpeek-infra package (`pulumi package add ../../provider` writes it to sdks/ and links it).
import * as mixpeek from "@mixpeek/mixpeek-infra";

const ns = new mixpeek.Namespace("spotify_playlists_dev", {
    request: {
        namespaceName: "spotify_playlists_dev",
        description: "This namespace contains playlists from Spotify",
        autoCreateIndexes: true,
        featureExtractors: [
            { featureExtractorId: "multimodal_extractor_v1", featureExtractorName: "multimodal_extractor", version: "v1" },
            {
                featureExtractorId: "image_extractor_v1", featureExtractorName: "image_extractor", version: "v1",
                params: { model: "siglip_base" },
            },
        ],
        payloadIndexes: [
            {
                fieldName: "metadata.title", type: "text", isProtected: false,
                fieldSchema: { type: "text", tokenizer: "word", min_token_len: 2, max_token_len: 15, lowercase: true },
            },
            {
                fieldName: "metadata.description", type: "keyword", isProtected: false,
                fieldSchema: { type: "keyword", is_tenant: true },
            },
        ],
    },
    qdrant: { path: ".mixpeek/qdrant" },
});

// The Python stack's outputs, per namespace name.
export const spotify_playlists_dev = {
    namespace_id: ns.namespaceId,
    vector_inference_map: ns.vectorInferenceMap,
    infrastructure: ns.infrastructure,
    namespace: ns.namespace,
};
