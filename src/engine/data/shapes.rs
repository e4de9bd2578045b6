//! Procedural drawing of the demo images: one shape or texture patch on a textured background.

use std::f32::consts::{FRAC_PI_2, PI, TAU};

use image::RgbImage;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Width and height of every demo image, in pixels.
pub(super) const SIDE: u32 = 48;

/// Samples per pixel along each axis; edges are anti-aliased by averaging them.
const SUPERSAMPLE: usize = 4;

/// A demo class: what the foreground of an image shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    Circle,
    Square,
    Triangle,
    Cross,
    Ring,
    Diamond,
    Star,
    Stripes,
    Checker,
    Dots,
    Ellipse,
    Hexagon,
    Plus,
    Crescent,
    Arrow,
}

impl Shape {
    /// The class folder name.
    pub(super) fn name(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::Cross => "cross",
            Shape::Ring => "ring",
            Shape::Diamond => "diamond",
            Shape::Star => "star",
            Shape::Stripes => "stripes",
            Shape::Checker => "checker",
            Shape::Dots => "dots",
            Shape::Ellipse => "ellipse",
            Shape::Hexagon => "hexagon",
            Shape::Plus => "plus",
            Shape::Crescent => "crescent",
            Shape::Arrow => "arrow",
        }
    }
}

/// Whether a point in the shape's own frame (unit radius, centred, unrotated) is covered.
type Mask = Box<dyn Fn(f32, f32) -> bool>;

/// Draws one image of `shape`; every choice comes from `rng`, so equal streams give equal images.
pub(super) fn render(shape: Shape, rng: &mut ChaCha8Rng) -> RgbImage {
    let background = Background::random(rng);
    let foreground = contrasting_colour(rng, background.mean());
    let mask = shape_mask(shape, rng);
    // Sizes and positions keep most of the shape inside the centre crop the loader takes.
    let radius = rng.random_range(9.5..15.0f32);
    let centre = [
        rng.random_range(17.0..31.0f32),
        rng.random_range(17.0..31.0f32),
    ];
    let angle = match shape {
        // Squares, diamonds and plus signs stay near upright so that they stay distinct from
        // each other and from the cross.
        Shape::Square | Shape::Diamond | Shape::Plus => rng.random_range(-0.25..0.25f32),
        Shape::Cross => PI / 4.0 + rng.random_range(-0.25..0.25f32),
        _ => rng.random_range(0.0..TAU),
    };
    let (sin, cos) = angle.sin_cos();
    let distractors = random_strokes(rng);
    let noise = rng.random_range(0.01..0.06f32);

    let mut image = RgbImage::new(SIDE, SIDE);
    for (x, y, pixel) in image.enumerate_pixels_mut() {
        let mut colour = background.at(x as f32, y as f32);
        let shape_cover = coverage(x, y, |px, py| {
            let (dx, dy) = (px - centre[0], py - centre[1]);
            mask(
                (cos * dx + sin * dy) / radius,
                (cos * dy - sin * dx) / radius,
            )
        });
        blend(&mut colour, foreground, shape_cover);
        for stroke in &distractors {
            let stroke_cover = coverage(x, y, |px, py| stroke.covers(px, py));
            blend(&mut colour, stroke.colour, stroke_cover);
        }
        for (out, value) in pixel.0.iter_mut().zip(colour) {
            let noisy = value + noise * gaussian(rng);
            *out = (noisy.clamp(0.0, 1.0) * 255.0).round() as u8;
        }
    }
    image
}

/// The fraction of a pixel's sub-samples that `covered` accepts.
fn coverage(x: u32, y: u32, covered: impl Fn(f32, f32) -> bool) -> f32 {
    let step = 1.0 / SUPERSAMPLE as f32;
    let mut hits = 0;
    for sy in 0..SUPERSAMPLE {
        for sx in 0..SUPERSAMPLE {
            let px = x as f32 + (sx as f32 + 0.5) * step;
            let py = y as f32 + (sy as f32 + 0.5) * step;
            hits += usize::from(covered(px, py));
        }
    }
    hits as f32 / (SUPERSAMPLE * SUPERSAMPLE) as f32
}

fn blend(colour: &mut [f32; 3], over: [f32; 3], amount: f32) {
    for (c, o) in colour.iter_mut().zip(over) {
        *c += (o - *c) * amount;
    }
}

/// The outline of a class, with its own random proportions.
fn shape_mask(shape: Shape, rng: &mut ChaCha8Rng) -> Mask {
    match shape {
        Shape::Circle => Box::new(|u, v| u * u + v * v <= 1.0),
        Shape::Ring => {
            let inner = 1.0 - rng.random_range(0.25..0.45f32);
            Box::new(move |u, v| (inner * inner..=1.0).contains(&(u * u + v * v)))
        }
        Shape::Ellipse => {
            let minor = rng.random_range(0.45..0.65f32);
            Box::new(move |u, v| u * u + (v / minor) * (v / minor) <= 1.0)
        }
        Shape::Square => {
            let half = rng.random_range(0.75..0.9f32);
            Box::new(move |u, v| u.abs() <= half && v.abs() <= half)
        }
        Shape::Diamond => {
            let width = rng.random_range(0.55..0.75f32);
            Box::new(move |u, v| u.abs() / width + v.abs() <= 1.0)
        }
        Shape::Triangle => regular_polygon(3),
        Shape::Hexagon => regular_polygon(6),
        Shape::Cross | Shape::Plus => {
            let arm = rng.random_range(0.18..0.3f32);
            Box::new(move |u, v| {
                u.abs() <= 1.0 && v.abs() <= 1.0 && (u.abs() <= arm || v.abs() <= arm)
            })
        }
        Shape::Star => star(rng.random_range(0.38..0.5f32)),
        Shape::Crescent => {
            let offset = rng.random_range(0.35..0.55f32);
            let bite = rng.random_range(0.8..0.95f32);
            Box::new(move |u, v| {
                u * u + v * v <= 1.0 && (u - offset) * (u - offset) + v * v > bite * bite
            })
        }
        Shape::Arrow => {
            let shaft = rng.random_range(0.12..0.2f32);
            let head = rng.random_range(0.45..0.6f32);
            Box::new(move |u, v| {
                let in_shaft = (-1.0..=0.2).contains(&u) && v.abs() <= shaft;
                let in_head = (0.1..=1.0).contains(&u) && v.abs() <= head * (1.0 - u) / 0.9;
                in_shaft || in_head
            })
        }
        Shape::Stripes => {
            let region = patch_region(rng);
            let period = rng.random_range(0.4..0.6f32);
            let (sin, cos) = rng.random_range(0.0..PI).sin_cos();
            Box::new(move |u, v| {
                region(u, v) && ((cos * u + sin * v) / period).rem_euclid(1.0) < 0.5
            })
        }
        Shape::Checker => {
            let region = patch_region(rng);
            let cell = rng.random_range(0.3..0.45f32);
            let (sin, cos) = rng.random_range(0.0..FRAC_PI_2).sin_cos();
            Box::new(move |u, v| {
                let a = ((cos * u + sin * v) / cell).floor() as i64;
                let b = ((cos * v - sin * u) / cell).floor() as i64;
                region(u, v) && (a + b).rem_euclid(2) == 0
            })
        }
        Shape::Dots => {
            let dots = scattered_dots(rng);
            Box::new(move |u, v| {
                dots.iter()
                    .any(|&(x, y, r)| (u - x) * (u - x) + (v - y) * (v - y) <= r * r)
            })
        }
    }
}

/// A regular polygon with `sides` corners on the unit circle.
fn regular_polygon(sides: usize) -> Mask {
    let apothem = (PI / sides as f32).cos();
    let normals: Vec<(f32, f32)> = (0..sides)
        .map(|k| (TAU * k as f32 / sides as f32).sin_cos())
        .collect();
    Box::new(move |u, v| normals.iter().all(|&(s, c)| c * u + s * v <= apothem))
}

/// A five-pointed star with points on the unit circle and inner corners at radius `inner`.
fn star(inner: f32) -> Mask {
    let half_sector = PI / 5.0;
    let corner = (inner * half_sector.cos(), inner * half_sector.sin());
    Box::new(move |u, v| {
        // Fold the point into the half sector between a point of the star (angle 0) and the
        // next inner corner, then test which side of the edge between the two it lies on.
        let mut angle = v.atan2(u).rem_euclid(2.0 * half_sector);
        if angle > half_sector {
            angle = 2.0 * half_sector - angle;
        }
        let radius = u.hypot(v);
        let (x, y) = (radius * angle.cos(), radius * angle.sin());
        (corner.0 - 1.0) * y - corner.1 * (x - 1.0) >= 0.0
    })
}

/// The outline a texture patch is cut to: a disc or a square, so the class is the texture.
fn patch_region(rng: &mut ChaCha8Rng) -> Box<dyn Fn(f32, f32) -> bool> {
    if rng.random_bool(0.5) {
        Box::new(|u, v| u * u + v * v <= 1.0)
    } else {
        Box::new(|u, v| u.abs() <= 0.85 && v.abs() <= 0.85)
    }
}

/// Five to ten small discs scattered over the unit disc without touching.
fn scattered_dots(rng: &mut ChaCha8Rng) -> Vec<(f32, f32, f32)> {
    let radius = rng.random_range(0.11..0.16f32);
    let wanted = rng.random_range(5..=10);
    let mut dots: Vec<(f32, f32, f32)> = Vec::with_capacity(wanted);
    for _ in 0..200 {
        if dots.len() == wanted {
            break;
        }
        let (x, y) = (
            rng.random_range(-0.9..0.9f32),
            rng.random_range(-0.9..0.9f32),
        );
        let apart = dots
            .iter()
            .all(|&(dx, dy, _)| (x - dx).hypot(y - dy) >= 2.6 * radius);
        if x.hypot(y) <= 0.9 && apart {
            dots.push((x, y, radius));
        }
    }
    dots
}

/// A smooth two-colour gradient with low-frequency blotches, never a pattern of its own.
struct Background {
    from: [f32; 3],
    to: [f32; 3],
    direction: (f32, f32),
    blotches: [[f32; 5]; 5],
    blotch_strength: f32,
}

impl Background {
    fn random(rng: &mut ChaCha8Rng) -> Self {
        let from = random_colour(rng);
        let mut to = from;
        for c in &mut to {
            *c = (*c + rng.random_range(-0.3..0.3f32)).clamp(0.0, 1.0);
        }
        let mut blotches = [[0.0; 5]; 5];
        for value in blotches.iter_mut().flatten() {
            *value = rng.random_range(-1.0..1.0f32);
        }
        Background {
            from,
            to,
            direction: rng.random_range(0.0..TAU).sin_cos(),
            blotches,
            blotch_strength: rng.random_range(0.0..0.12f32),
        }
    }

    fn mean(&self) -> [f32; 3] {
        [0, 1, 2].map(|c| (self.from[c] + self.to[c]) / 2.0)
    }

    fn at(&self, x: f32, y: f32) -> [f32; 3] {
        let side = SIDE as f32;
        let (sin, cos) = self.direction;
        let t = ((cos * (x / side - 0.5) + sin * (y / side - 0.5)) + 0.5).clamp(0.0, 1.0);
        let blotch =
            self.blotch_strength * bilinear(&self.blotches, x / side * 4.0, y / side * 4.0);
        [0, 1, 2].map(|c| self.from[c] + (self.to[c] - self.from[c]) * t + blotch)
    }
}

fn bilinear(grid: &[[f32; 5]; 5], x: f32, y: f32) -> f32 {
    let (x0, y0) = ((x.floor() as usize).min(3), (y.floor() as usize).min(3));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let top = grid[y0][x0] * (1.0 - fx) + grid[y0][x0 + 1] * fx;
    let bottom = grid[y0 + 1][x0] * (1.0 - fx) + grid[y0 + 1][x0 + 1] * fx;
    top * (1.0 - fy) + bottom * fy
}

/// A thin short line in a random colour, drawn over the scene to make the task less clean.
struct Stroke {
    from: (f32, f32),
    to: (f32, f32),
    width: f32,
    colour: [f32; 3],
}

impl Stroke {
    fn covers(&self, x: f32, y: f32) -> bool {
        let (dx, dy) = (self.to.0 - self.from.0, self.to.1 - self.from.1);
        let t = (((x - self.from.0) * dx + (y - self.from.1) * dy) / (dx * dx + dy * dy))
            .clamp(0.0, 1.0);
        let (nx, ny) = (self.from.0 + t * dx, self.from.1 + t * dy);
        (x - nx).hypot(y - ny) <= self.width / 2.0
    }
}

fn random_strokes(rng: &mut ChaCha8Rng) -> Vec<Stroke> {
    let count = [0, 0, 1, 1, 2][rng.random_range(0..5)];
    (0..count)
        .map(|_| {
            let from = (
                rng.random_range(2.0..46.0f32),
                rng.random_range(2.0..46.0f32),
            );
            let (sin, cos) = rng.random_range(0.0..TAU).sin_cos();
            let length = rng.random_range(4.0..9.0f32);
            Stroke {
                from,
                to: (from.0 + cos * length, from.1 + sin * length),
                width: rng.random_range(1.0..2.0f32),
                colour: random_colour(rng),
            }
        })
        .collect()
}

fn random_colour(rng: &mut ChaCha8Rng) -> [f32; 3] {
    [(); 3].map(|_| rng.random_range(0.0..1.0f32))
}

fn luma(colour: [f32; 3]) -> f32 {
    0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
}

/// A colour that stands out from `background`, though sometimes only just.
fn contrasting_colour(rng: &mut ChaCha8Rng, background: [f32; 3]) -> [f32; 3] {
    let wanted = rng.random_range(0.2..0.45f32);
    let mut best = random_colour(rng);
    for _ in 0..32 {
        if (luma(best) - luma(background)).abs() >= wanted {
            break;
        }
        let candidate = random_colour(rng);
        if (luma(candidate) - luma(background)).abs() > (luma(best) - luma(background)).abs() {
            best = candidate;
        }
    }
    best
}

/// Roughly standard normal noise: three uniforms on -1..1 add up to a variance of 1.
fn gaussian(rng: &mut ChaCha8Rng) -> f32 {
    (0..3).map(|_| rng.random_range(-1.0..1.0f32)).sum()
}
