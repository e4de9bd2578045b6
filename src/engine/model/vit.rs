//! Vision Transformers: torchvision's ViT-B/16, B/32 and L/16 and timm's
//! `vit_tiny/small/base_patch16_224` (the same network, DeiT's too), with both libraries'
//! names. Fields follow torchvision's layout.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::{gelu, softmax};

use super::classifier::{Classifier, Layout, ModelShape};
use super::tensors::torchvision_name;

/// Groups of a 12-block ViT: the embedding, four groups of three blocks, the head.
pub(super) const GROUPS_12: &[(&str, &str)] = &[
    (
        "embed",
        r"^(conv_proj\.|class_token$|encoder\.pos_embedding$)",
    ),
    ("blocks1", r"^encoder\.layers\.[0-2]\."),
    ("blocks2", r"^encoder\.layers\.[3-5]\."),
    ("blocks3", r"^encoder\.layers\.[6-8]\."),
    ("blocks4", r"^encoder\.layers\.(9|10|11)\."),
    ("head", r"^(encoder\.ln|heads)\."),
];

/// Groups of a 24-block ViT (ViT-L): four groups of six blocks.
pub(super) const GROUPS_24: &[(&str, &str)] = &[
    (
        "embed",
        r"^(conv_proj\.|class_token$|encoder\.pos_embedding$)",
    ),
    ("blocks1", r"^encoder\.layers\.[0-5]\."),
    ("blocks2", r"^encoder\.layers\.([6-9]|10|11)\."),
    ("blocks3", r"^encoder\.layers\.1[2-7]\."),
    ("blocks4", r"^encoder\.layers\.(1[89]|2[0-3])\."),
    ("head", r"^(encoder\.ln|heads)\."),
];

/// A ViT's patch size, depth, heads and widths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VitShape {
    pub patch: usize,
    pub layers: usize,
    pub heads: usize,
    pub hidden: usize,
    pub mlp: usize,
}

impl VitShape {
    pub const B_16: Self = Self::new(16, 12, 12, 768);
    pub const B_32: Self = Self::new(32, 12, 12, 768);
    pub const L_16: Self = Self::new(16, 24, 16, 1024);
    pub const TINY_16: Self = Self::new(16, 12, 3, 192);
    pub const SMALL_16: Self = Self::new(16, 12, 6, 384);

    const fn new(patch: usize, layers: usize, heads: usize, hidden: usize) -> Self {
        Self {
            patch,
            layers,
            heads,
            hidden,
            mlp: 4 * hidden,
        }
    }
}

/// torchvision's `MLPBlock` (timm's `Mlp`): Linear up, GELU, Linear down.
#[derive(Module, Debug)]
pub struct VitMlp {
    pub fc1: Linear,
    pub fc2: Linear,
}

/// PyTorch's `nn.MultiheadAttention` as torchvision's ViT uses it: one projection to queries,
/// keys and values (`in_proj`), scaled dot products per head, an output projection.
#[derive(Module, Debug)]
pub struct SelfAttention {
    pub in_proj: Linear,
    pub out_proj: Linear,
    pub heads: usize,
}

impl SelfAttention {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [n, l, d] = x.dims();
        let (h, hd) = (self.heads, d / self.heads);
        let qkv = self.in_proj.forward(x).reshape([n, l, 3, h, hd]);
        let mut parts = qkv
            .chunk(3, 2)
            .into_iter()
            .map(|t| t.reshape([n, l, h, hd]).swap_dims(1, 2));
        let (Some(q), Some(k), Some(v)) = (parts.next(), parts.next(), parts.next()) else {
            unreachable!("chunk(3) gives three parts");
        };
        let scores = q
            .matmul(k.swap_dims(2, 3))
            .mul_scalar(1.0 / (hd as f64).sqrt());
        let out = softmax(scores, 3)
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([n, l, d]);
        self.out_proj.forward(out)
    }
}

/// torchvision's `EncoderBlock` (timm's `Block`): pre-norm attention and MLP, each residual.
#[derive(Module, Debug)]
pub struct EncoderBlock {
    pub ln_1: LayerNorm,
    pub self_attention: SelfAttention,
    pub ln_2: LayerNorm,
    pub mlp: VitMlp,
}

impl EncoderBlock {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = self.self_attention.forward(self.ln_1.forward(x.clone())) + x;
        let y = self.mlp.fc1.forward(self.ln_2.forward(x.clone()));
        self.mlp.fc2.forward(gelu(y)) + x
    }
}

#[derive(Module, Debug)]
pub struct Encoder {
    /// `[1, 1 + patches, hidden]`: the class token's position first.
    pub pos_embedding: Param<Tensor<3>>,
    pub layers: Vec<EncoderBlock>,
    pub ln: LayerNorm,
}

#[derive(Module, Debug)]
pub struct VitHeads {
    pub head: Linear,
}

#[derive(Module, Debug)]
pub struct Vit {
    pub conv_proj: Conv2d,
    pub class_token: Param<Tensor<3>>,
    pub encoder: Encoder,
    pub heads: VitHeads,
}

fn layer_norm(dim: usize, device: &Device) -> LayerNorm {
    LayerNormConfig::new(dim).with_epsilon(1e-6).init(device)
}

impl Vit {
    /// A freshly initialised ViT for `model.image_size` (a multiple of the patch size: the
    /// registry checks it) (uses the device's random state: seed it first).
    pub fn new(shape: VitShape, model: ModelShape, device: &Device) -> Self {
        let d = shape.hidden;
        let grid = model.image_size / shape.patch;
        let linear = |i, o| LinearConfig::new(i, o).init(device);
        let layers = (0..shape.layers)
            .map(|_| EncoderBlock {
                ln_1: layer_norm(d, device),
                self_attention: SelfAttention {
                    in_proj: linear(d, 3 * d),
                    out_proj: linear(d, d),
                    heads: shape.heads,
                },
                ln_2: layer_norm(d, device),
                mlp: VitMlp {
                    fc1: linear(d, shape.mlp),
                    fc2: linear(shape.mlp, d),
                },
            })
            .collect();
        // torchvision: LeCun normal for the patch embedding, N(0, 0.02) position embeddings,
        // a zero class token and a zero head.
        let fan_in = (model.in_channels * shape.patch * shape.patch) as f64;
        Self {
            conv_proj: Conv2dConfig::new([model.in_channels, d], [shape.patch, shape.patch])
                .with_stride([shape.patch, shape.patch])
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: (1.0 / fan_in).sqrt(),
                })
                .init(device),
            class_token: Param::from_tensor(Tensor::zeros([1, 1, d], device)),
            encoder: Encoder {
                pos_embedding: Param::from_tensor(Tensor::random(
                    [1, grid * grid + 1, d],
                    Distribution::Normal(0.0, 0.02),
                    device,
                )),
                layers,
                ln: layer_norm(d, device),
            },
            heads: VitHeads {
                head: LinearConfig::new(d, model.classes)
                    .with_initializer(Initializer::Zeros)
                    .init(device),
            },
        }
    }
}

impl Classifier for Vit {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let x = self.conv_proj.forward(images);
        let [n, d, gh, gw] = x.dims();
        let patches = x.reshape([n, d, gh * gw]).swap_dims(1, 2);
        let token = self.class_token.val().repeat_dim(0, n);
        let mut x = Tensor::cat(vec![token, patches], 1) + self.encoder.pos_embedding.val();
        for layer in &self.encoder.layers {
            x = layer.forward(x);
        }
        let x = self.encoder.ln.forward(x);
        let cls = x.slice([0..n, 0..1, 0..d]).reshape([n, d]);
        self.heads.head.forward(cls)
    }

    fn layout_name(&self, layout: Layout, path: &str) -> Option<String> {
        let name = torchvision_name(path);
        match layout {
            Layout::Torchvision => Some(torchvision(&name)),
            Layout::Timm => timm(&name),
        }
    }
}

/// torchvision's names: layers are `encoder_layer_N`, the attention's input projection is
/// two plain parameters, the MLP a numbered sequence.
fn torchvision(name: &str) -> String {
    let Some(rest) = name.strip_prefix("encoder.layers.") else {
        return name.to_string();
    };
    let (index, rest) = rest.split_once('.').unwrap_or((rest, ""));
    let rest = match rest {
        "self_attention.in_proj.weight" => "self_attention.in_proj_weight".to_string(),
        "self_attention.in_proj.bias" => "self_attention.in_proj_bias".to_string(),
        _ => rest
            .replacen("mlp.fc1.", "mlp.0.", 1)
            .replacen("mlp.fc2.", "mlp.3.", 1),
    };
    format!("encoder.layers.encoder_layer_{index}.{rest}")
}

/// timm's names (`blocks.N.attn.qkv`, `cls_token`, `pos_embed`, `patch_embed.proj`).
fn timm(name: &str) -> Option<String> {
    let renamed = match name {
        "class_token" => "cls_token".to_string(),
        "encoder.pos_embedding" => "pos_embed".to_string(),
        _ if name.starts_with("conv_proj.") => name.replacen("conv_proj.", "patch_embed.proj.", 1),
        _ if name.starts_with("encoder.ln.") => name.replacen("encoder.ln.", "norm.", 1),
        _ if name.starts_with("heads.head.") => name.replacen("heads.head.", "head.", 1),
        _ => {
            let rest = name.strip_prefix("encoder.layers.")?;
            let (index, rest) = rest.split_once('.')?;
            let (module, tail) = rest.split_once('.')?;
            let module = match module {
                "ln_1" => "norm1".to_string(),
                "ln_2" => "norm2".to_string(),
                "self_attention" => tail.split_once('.').map(|(m, t)| {
                    let m = if m == "in_proj" { "qkv" } else { "proj" };
                    format!("attn.{m}.{t}")
                })?,
                "mlp" => format!("mlp.{tail}"),
                _ => return None,
            };
            return Some(
                match module.starts_with("attn.") || module.starts_with("mlp.") {
                    true => format!("blocks.{index}.{module}"),
                    false => format!("blocks.{index}.{module}.{tail}"),
                },
            );
        }
    };
    Some(renamed)
}
