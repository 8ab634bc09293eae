//! A small glTF 2.0 binary (.glb) writer: triangle meshes with positions, normals and indices,
//! PBR materials (with alpha blending for glass and water), a node tree, and rotation
//! animations. Output is deterministic: the same input gives the same bytes.

use serde_json::{Value, json};

/// A triangle mesh.
#[derive(Debug, Clone, Default)]
pub struct Mesh {
    /// Vertex positions.
    pub positions: Vec<[f32; 3]>,
    /// Vertex normals (unit length).
    pub normals: Vec<[f32; 3]>,
    /// Triangles, counter-clockwise.
    pub indices: Vec<u32>,
}

impl Mesh {
    /// Appends another mesh, moved by `offset` and scaled by `scale`.
    pub fn append(&mut self, other: &Mesh, offset: [f32; 3], scale: [f32; 3]) {
        let base = self.positions.len() as u32;
        for p in &other.positions {
            self.positions.push([
                p[0] * scale[0] + offset[0],
                p[1] * scale[1] + offset[1],
                p[2] * scale[2] + offset[2],
            ]);
        }
        for n in &other.normals {
            let v = [n[0] / scale[0], n[1] / scale[1], n[2] / scale[2]];
            self.normals.push(normalize(v));
        }
        self.indices.extend(other.indices.iter().map(|i| i + base));
    }

    fn bounds(&self) -> ([f32; 3], [f32; 3]) {
        let mut lo = [f32::MAX; 3];
        let mut hi = [f32::MIN; 3];
        for p in &self.positions {
            for k in 0..3 {
                lo[k] = lo[k].min(p[k]);
                hi[k] = hi[k].max(p[k]);
            }
        }
        if self.positions.is_empty() {
            ([0.0; 3], [0.0; 3])
        } else {
            (lo, hi)
        }
    }
}

/// Unit vector (zero stays zero).
pub fn normalize(v: [f32; 3]) -> [f32; 3] {
    let l = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    if l > 0.0 {
        [v[0] / l, v[1] / l, v[2] / l]
    } else {
        v
    }
}

/// A material.
#[derive(Debug, Clone)]
pub struct Material {
    /// Its name.
    pub name: String,
    /// Linear RGBA.
    pub color: [f32; 4],
    /// 0..1.
    pub metallic: f32,
    /// 0..1.
    pub roughness: f32,
    /// Blend with what is behind (glass, water).
    pub blend: bool,
    /// Not lit (KHR_materials_unlit): its colour as it is. Thin glass, whose lighting no one
    /// sees at its opacity, and whose lit shading cost most of a frame on a software renderer.
    pub unlit: bool,
}

/// A node: one mesh (with a material), a placement, children.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its name.
    pub name: String,
    /// Mesh and material indices.
    pub mesh: Option<(usize, usize)>,
    /// Translation.
    pub translation: [f32; 3],
    /// Children (node indices).
    pub children: Vec<usize>,
}

/// A looping rotation animation of one node: times (s) and quaternions (x, y, z, w).
#[derive(Debug, Clone)]
pub struct Animation {
    /// Its name.
    pub name: String,
    /// The node it turns.
    pub node: usize,
    /// Key times.
    pub times: Vec<f32>,
    /// Key rotations.
    pub rotations: Vec<[f32; 4]>,
}

/// A scene to write.
#[derive(Debug, Clone, Default)]
pub struct Scene {
    /// Meshes.
    pub meshes: Vec<Mesh>,
    /// Materials.
    pub materials: Vec<Material>,
    /// Nodes; the roots are those nobody lists as a child.
    pub nodes: Vec<Node>,
    /// Animations.
    pub animations: Vec<Animation>,
}

fn push_f32s(bin: &mut Vec<u8>, values: impl IntoIterator<Item = f32>) {
    for v in values {
        bin.extend_from_slice(&v.to_le_bytes());
    }
}

fn pad4(bin: &mut Vec<u8>, fill: u8) {
    while !bin.len().is_multiple_of(4) {
        bin.push(fill);
    }
}

impl Scene {
    /// The .glb bytes.
    pub fn to_glb(&self) -> Vec<u8> {
        let mut bin = Vec::new();
        let mut views = Vec::new();
        let mut accessors = Vec::new();
        let mut view = |bin: &mut Vec<u8>, start: usize, target: Option<u32>| {
            let mut v = json!({"buffer": 0, "byteOffset": start, "byteLength": bin.len() - start});
            if let Some(t) = target {
                v["target"] = json!(t);
            }
            views.push(v);
            views.len() - 1
        };
        let mut meshes = Vec::new();
        for (mi, m) in self.meshes.iter().enumerate() {
            let (lo, hi) = m.bounds();
            let start = bin.len();
            push_f32s(&mut bin, m.positions.iter().flatten().copied());
            let pv = view(&mut bin, start, Some(34962));
            accessors.push(json!({"bufferView": pv, "componentType": 5126, "count": m.positions.len(), "type": "VEC3", "min": lo, "max": hi}));
            let pos = accessors.len() - 1;
            let start = bin.len();
            push_f32s(&mut bin, m.normals.iter().flatten().copied());
            let nv = view(&mut bin, start, Some(34962));
            accessors.push(json!({"bufferView": nv, "componentType": 5126, "count": m.normals.len(), "type": "VEC3"}));
            let nor = accessors.len() - 1;
            let start = bin.len();
            for i in &m.indices {
                bin.extend_from_slice(&i.to_le_bytes());
            }
            let iv = view(&mut bin, start, Some(34963));
            accessors.push(json!({"bufferView": iv, "componentType": 5125, "count": m.indices.len(), "type": "SCALAR"}));
            let idx = accessors.len() - 1;
            meshes.push((mi, pos, nor, idx));
        }
        // One glTF mesh per (mesh, material) pair used by a node.
        let mut gl_meshes: Vec<Value> = Vec::new();
        let mut nodes = Vec::new();
        for n in &self.nodes {
            let mut node = json!({"name": n.name, "translation": n.translation});
            if let Some((mesh, material)) = n.mesh
                && let Some((_, pos, nor, idx)) = meshes.get(mesh)
            {
                gl_meshes.push(json!({"primitives": [{"attributes": {"POSITION": pos, "NORMAL": nor}, "indices": idx, "material": material}]}));
                node["mesh"] = json!(gl_meshes.len() - 1);
            }
            if !n.children.is_empty() {
                node["children"] = json!(n.children);
            }
            nodes.push(node);
        }
        let mut animations = Vec::new();
        for a in &self.animations {
            let start = bin.len();
            push_f32s(&mut bin, a.times.iter().copied());
            let tv = view(&mut bin, start, None);
            let tmax = a.times.iter().copied().fold(0.0f32, f32::max);
            accessors.push(json!({"bufferView": tv, "componentType": 5126, "count": a.times.len(), "type": "SCALAR", "min": [0.0], "max": [tmax]}));
            let input = accessors.len() - 1;
            let start = bin.len();
            push_f32s(&mut bin, a.rotations.iter().flatten().copied());
            let rv = view(&mut bin, start, None);
            accessors.push(json!({"bufferView": rv, "componentType": 5126, "count": a.rotations.len(), "type": "VEC4"}));
            let output = accessors.len() - 1;
            animations.push(json!({
                "name": a.name,
                "samplers": [{"input": input, "output": output, "interpolation": "LINEAR"}],
                "channels": [{"sampler": 0, "target": {"node": a.node, "path": "rotation"}}],
            }));
        }
        let materials: Vec<Value> = self
            .materials
            .iter()
            .map(|m| {
                // Single-sided, blended or not: a thin wall shows the camera one face either way,
                // and double-sided glass drew every wall twice over the whole tank.
                let mut v = json!({
                    "name": m.name,
                    "pbrMetallicRoughness": {"baseColorFactor": m.color, "metallicFactor": m.metallic, "roughnessFactor": m.roughness},
                });
                if m.blend {
                    v["alphaMode"] = json!("BLEND");
                }
                if m.unlit {
                    v["extensions"] = json!({"KHR_materials_unlit": {}});
                }
                v
            })
            .collect();
        let children: std::collections::BTreeSet<usize> = self
            .nodes
            .iter()
            .flat_map(|n| n.children.iter().copied())
            .collect();
        let roots: Vec<usize> = (0..self.nodes.len())
            .filter(|i| !children.contains(i))
            .collect();
        pad4(&mut bin, 0);
        let unlit = self.materials.iter().any(|m| m.unlit);
        let mut doc = json!({
            "asset": {"version": "2.0", "generator": "bloxquarium assets generate"},
            "scene": 0,
            "scenes": [{"nodes": roots}],
            "nodes": nodes,
            "meshes": gl_meshes,
            "materials": materials,
            "buffers": [{"byteLength": bin.len()}],
            "bufferViews": views,
            "accessors": accessors,
        });
        if !animations.is_empty() {
            doc["animations"] = json!(animations);
        }
        if unlit {
            doc["extensionsUsed"] = json!(["KHR_materials_unlit"]);
        }
        let mut text = serde_json::to_vec(&doc).unwrap_or_default();
        while !text.len().is_multiple_of(4) {
            text.push(b' ');
        }
        let total = 12 + 8 + text.len() + 8 + bin.len();
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(b"glTF");
        out.extend_from_slice(&2u32.to_le_bytes());
        out.extend_from_slice(&(total as u32).to_le_bytes());
        out.extend_from_slice(&(text.len() as u32).to_le_bytes());
        out.extend_from_slice(b"JSON");
        out.extend_from_slice(&text);
        out.extend_from_slice(&(bin.len() as u32).to_le_bytes());
        out.extend_from_slice(b"BIN\0");
        out.extend_from_slice(&bin);
        out
    }
}

/// An axis-aligned box centred on the origin with half-extents `h`.
pub fn cuboid(h: [f32; 3]) -> Mesh {
    let mut m = Mesh::default();
    let faces: [([f32; 3], [f32; 3], [f32; 3]); 6] = [
        ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]),
        ([-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]),
        ([0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]),
        ([0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]),
        ([0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]),
        ([0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]),
    ];
    for (n, u, v) in faces {
        let base = m.positions.len() as u32;
        for (su, sv) in [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)] {
            let p = [
                (n[0] + u[0] * su + v[0] * sv) * h[0],
                (n[1] + u[1] * su + v[1] * sv) * h[1],
                (n[2] + u[2] * su + v[2] * sv) * h[2],
            ];
            m.positions.push(p);
            m.normals.push(n);
        }
        m.indices
            .extend_from_slice(&[base, base + 1, base + 2, base, base + 2, base + 3]);
    }
    m
}

/// A UV sphere of radius 1 with `rings` × `segments` quads, each vertex moved outward by
/// `bump(theta, phi)` (0: a sphere).
pub fn sphere(rings: u32, segments: u32, bump: impl Fn(f32, f32) -> f32) -> Mesh {
    let mut m = Mesh::default();
    for r in 0..=rings {
        let theta = std::f32::consts::PI * r as f32 / rings as f32;
        for s in 0..=segments {
            let phi = std::f32::consts::TAU * s as f32 / segments as f32;
            let n = [
                theta.sin() * phi.cos(),
                theta.cos(),
                theta.sin() * phi.sin(),
            ];
            let k = 1.0 + bump(theta, phi);
            m.positions.push([n[0] * k, n[1] * k, n[2] * k]);
            m.normals.push(n);
        }
    }
    let w = segments + 1;
    for r in 0..rings {
        for s in 0..segments {
            let a = r * w + s;
            let b = a + w;
            m.indices.extend_from_slice(&[a, a + 1, b, a + 1, b + 1, b]);
        }
    }
    m
}

/// A height field over x, z in [-1, 1] with `n` × `n` quads; normals from the heights.
pub fn grid(n: u32, height: impl Fn(f32, f32) -> f32) -> Mesh {
    let mut m = Mesh::default();
    let step = 2.0 / n as f32;
    for i in 0..=n {
        for j in 0..=n {
            let (x, z) = (-1.0 + j as f32 * step, -1.0 + i as f32 * step);
            let y = height(x, z);
            let dx = height(x + 0.01, z) - height(x - 0.01, z);
            let dz = height(x, z + 0.01) - height(x, z - 0.01);
            m.positions.push([x, y, z]);
            m.normals.push(normalize([-dx / 0.02, 1.0, -dz / 0.02]));
        }
    }
    let w = n + 1;
    for i in 0..n {
        for j in 0..n {
            let a = i * w + j;
            m.indices
                .extend_from_slice(&[a, a + w, a + 1, a + 1, a + w, a + w + 1]);
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_glb_has_a_valid_header_and_parses_as_json() {
        let scene = Scene {
            meshes: vec![cuboid([1.0, 1.0, 1.0])],
            materials: vec![Material {
                name: "m".into(),
                color: [1.0, 0.0, 0.0, 1.0],
                metallic: 0.0,
                roughness: 0.5,
                blend: false,
                unlit: false,
            }],
            nodes: vec![Node {
                name: "box".into(),
                mesh: Some((0, 0)),
                translation: [0.0; 3],
                children: vec![],
            }],
            animations: vec![Animation {
                name: "spin".into(),
                node: 0,
                times: vec![0.0, 1.0],
                rotations: vec![[0.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0]],
            }],
        };
        let glb = scene.to_glb();
        assert_eq!(&glb[..4], b"glTF");
        assert_eq!(
            u32::from_le_bytes(glb[8..12].try_into().unwrap()) as usize,
            glb.len()
        );
        let json_len = u32::from_le_bytes(glb[12..16].try_into().unwrap()) as usize;
        let doc: serde_json::Value = serde_json::from_slice(&glb[20..20 + json_len]).unwrap();
        assert_eq!(doc["asset"]["version"], "2.0");
        assert_eq!(doc["accessors"][0]["count"], 24);
        assert_eq!(
            doc["animations"][0]["channels"][0]["target"]["path"],
            "rotation"
        );
        assert_eq!(glb, scene.to_glb(), "deterministic");
    }
}
