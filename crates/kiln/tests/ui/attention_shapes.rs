// Attention's shapes: heads that do not divide the width, a sequence longer than its
// position table, and a Transformer block whose MLP branch changes the width.
kiln::model! {
    pub struct SixHeads {
        input: tokens[64] of 65,
        embed: Embedding(65, 128),
        attn: MultiHeadAttention(6, causal = true),
    }
}

kiln::model! {
    pub struct ShortTable {
        input: tokens[64] of 65,
        embed: Embedding(65, 128),
        position: PositionEmbedding(32),
        attn: MultiHeadAttention(4, causal = true),
    }
}

kiln::model! {
    pub struct WideMlp {
        input: tokens[64] of 65,
        embed: Embedding(65, 128),
        mlp: Residual {
            ln: LayerNorm,
            fc: TimeDense(512, gelu),
            proj: TimeDense(256),
        },
    }
}

kiln::model! {
    pub struct AttentionOverImage {
        input: [8, 8, 3],
        attn: MultiHeadAttention(1),
    }
}

fn main() {}
