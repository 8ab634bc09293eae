//! The client's lean material. Every surface of the scene — ours and the generated models'
//! glTF materials — is drawn with [`SceneMaterial`] instead of Bevy's `StandardMaterial`: the
//! same base colour, texture, emission, alpha mode and culling, lit by the sun (the first
//! directional light: the game has one) with its shadow and by the point lights, fogged by the
//! camera's linear fog and tone-mapped by Bevy's own function, but with Lambert diffuse and a
//! Blinn-Phong highlight instead of the full physically based model.
//!
//! Why: on the software renderer (llvmpipe, what a machine without a GPU draws with) a shader
//! runs every branch for every pixel, so `StandardMaterial`'s one shader pays for every texture
//! slot, the 13-tap shadow filter of each cascade and the blend into the next, even where the
//! surface is unlit or untextured. Here, what a surface does not use is compiled out (shader
//! defs `LIT`, `GLOSSY`, `TEXTURED`, `MASKED`, `FOGGED`, `ADDITIVE`), and no branch depends on
//! uniform values alone (see `shading.wgsl`: the software Vulkan driver recompiles such shaders
//! at every draw). Materials are written as `StandardMaterial`
//! (ours and the glTF loader's) and turned into a `SceneMaterial` when their entity appears, one
//! per source material, so shared materials stay shared. A later change to the source is not
//! followed: a material that moves (the caustics) says how in its `drift`, which the shader
//! plays, so that no material is prepared again every frame.

use std::collections::HashMap;

use bevy::asset::uuid_handle;
use bevy::mesh::MeshVertexBufferLayoutRef;
use bevy::pbr::{MaterialPipeline, MaterialPipelineKey};
use bevy::prelude::*;
use bevy::render::render_resource::{
    AsBindGroup, Face, RenderPipelineDescriptor, ShaderType, SpecializedMeshPipelineError,
};
use bevy::shader::{Shader, ShaderRef};

/// The material's shader, embedded in the binary.
const SHADER: Handle<Shader> = uuid_handle!("6c3f0a52-8d1e-4b7a-9e2f-51c4d0b7a913");

/// The lean material (see the module doc).
#[derive(Asset, TypePath, AsBindGroup, Debug, Clone)]
#[bind_group_data(SceneKey)]
pub struct SceneMaterial {
    /// Colour, emission, UV transform, roughness and metallic, the texture's drift.
    #[uniform(0)]
    pub uniform: SceneUniform,
    /// The base colour texture (white where there is none).
    #[texture(1)]
    #[sampler(2)]
    pub texture: Option<Handle<Image>>,
    /// Light added over the surface (see [`SceneMaterial::with_overlay`]); its colour, UV
    /// transform and drift are in the uniform.
    #[texture(3)]
    #[sampler(4)]
    pub overlay: Option<Handle<Image>>,
    /// How it blends.
    pub alpha_mode: AlphaMode,
    /// Lit by the scene's lights (else its colour as it is).
    pub lit: bool,
    /// Fades into the camera's fog.
    pub fog: bool,
    /// Which faces are culled (`None`: both sides drawn).
    pub cull_mode: Option<Face>,
}

/// Light added over a surface ([`SceneMaterial::with_overlay`]): the caustics over the sand.
#[derive(Debug, Clone)]
pub struct Overlay {
    /// Its texture (alpha: how much light where).
    pub texture: Handle<Image>,
    /// Its colour (linear; alpha: how much of it is added).
    pub color: Vec4,
    /// The texture coordinates' transform.
    pub uv_transform: Mat3,
    /// The texture's drift in time, as [`SceneUniform::drift`].
    pub drift: Vec4,
}

/// The uniform of [`SceneMaterial`] (`SceneMaterial` in `shading.wgsl`).
#[derive(ShaderType, Debug, Clone, Copy, PartialEq)]
pub struct SceneUniform {
    /// Base colour (linear).
    pub base_color: Vec4,
    /// Emitted light (linear).
    pub emissive: Vec4,
    /// The texture coordinates' transform.
    pub uv_transform: Mat3,
    /// x: perceptual roughness, y: metallic, z: alpha cutoff (masked surfaces).
    pub surface: Vec4,
    /// The texture's drift in time `t` (seconds): its coordinates move by
    /// `(x·t, y·t + z·sin(w·t))`; zero for none.
    pub drift: Vec4,
    /// The overlay's colour (alpha: how much of it is added).
    pub overlay_color: Vec4,
    /// The overlay texture's coordinates' transform.
    pub overlay_uv_transform: Mat3,
    /// The overlay texture's drift, as `drift`.
    pub overlay_drift: Vec4,
}

/// Surfaces this rough or rougher get no highlight (compiled out).
pub const GLOSSY_BELOW: f32 = 0.6;

/// What specialises the pipeline of a [`SceneMaterial`]: the shader defs and the culling.
#[repr(C)]
#[derive(Debug, Eq, PartialEq, Hash, Copy, Clone)]
pub struct SceneKey {
    lit: bool,
    /// Lit with a highlight: roughness below [`GLOSSY_BELOW`].
    glossy: bool,
    textured: bool,
    masked: bool,
    fogged: bool,
    /// Blended by adding (`AlphaMode::Add`).
    additive: bool,
    /// With light added over it.
    overlay: bool,
    /// 0: both sides, 1: back faces culled, 2: front faces culled.
    cull: u8,
}

impl From<&SceneMaterial> for SceneKey {
    fn from(m: &SceneMaterial) -> Self {
        Self {
            lit: m.lit,
            glossy: m.lit && m.uniform.surface.x < GLOSSY_BELOW,
            textured: m.texture.is_some(),
            masked: matches!(m.alpha_mode, AlphaMode::Mask(_)),
            fogged: m.fog,
            additive: m.alpha_mode == AlphaMode::Add,
            overlay: m.overlay.is_some(),
            cull: match m.cull_mode {
                None => 0,
                Some(Face::Back) => 1,
                Some(Face::Front) => 2,
            },
        }
    }
}

impl SceneMaterial {
    /// The lean version of `m`: its colour, texture (with its UV transform), emission,
    /// roughness, metallic, alpha mode, culling, fog and whether it is lit. Normal, occlusion,
    /// metallic-roughness and emissive textures, clearcoat, transmission and the like are not
    /// carried: no model of the game uses them.
    pub fn from_standard(m: &StandardMaterial) -> Self {
        let cutoff = match m.alpha_mode {
            AlphaMode::Mask(c) => c,
            _ => 0.5,
        };
        Self {
            uniform: SceneUniform {
                base_color: LinearRgba::from(m.base_color).to_vec4(),
                emissive: m.emissive.to_vec4(),
                uv_transform: m.uv_transform.into(),
                surface: Vec4::new(m.perceptual_roughness, m.metallic, cutoff, 0.0),
                drift: Vec4::ZERO,
                overlay_color: Vec4::ZERO,
                overlay_uv_transform: Mat3::IDENTITY,
                overlay_drift: Vec4::ZERO,
            },
            texture: m.base_color_texture.clone(),
            overlay: None,
            alpha_mode: m.alpha_mode,
            lit: !m.unlit,
            fog: m.fog_enabled,
            cull_mode: if m.double_sided { None } else { m.cull_mode },
        }
    }

    /// This material with `overlay`'s light added over it, in the same draw: what an unlit
    /// additive layer of that texture would add drawn over this one, fogged and tone-mapped the
    /// same way, without drawing the surface a second time (on the software renderer a blended
    /// layer over a surface costs about as much as the surface).
    pub fn with_overlay(&self, overlay: &Overlay) -> Self {
        let mut m = self.clone();
        m.overlay = Some(overlay.texture.clone());
        m.uniform.overlay_color = overlay.color;
        m.uniform.overlay_uv_transform = overlay.uv_transform;
        m.uniform.overlay_drift = overlay.drift;
        m
    }

    /// Whether light passes through it: blended surfaces cast no shadow.
    pub fn see_through(&self) -> bool {
        !matches!(
            self.alpha_mode,
            AlphaMode::Opaque | AlphaMode::Mask(_) | AlphaMode::AlphaToCoverage
        )
    }
}

impl Material for SceneMaterial {
    fn fragment_shader() -> ShaderRef {
        SHADER.into()
    }

    fn alpha_mode(&self) -> AlphaMode {
        self.alpha_mode
    }

    fn specialize(
        _pipeline: &MaterialPipeline,
        descriptor: &mut RenderPipelineDescriptor,
        _layout: &MeshVertexBufferLayoutRef,
        key: MaterialPipelineKey<Self>,
    ) -> Result<(), SpecializedMeshPipelineError> {
        let k = key.bind_group_data;
        if let Some(fragment) = descriptor.fragment.as_mut() {
            for (on, def) in [
                (k.lit, "LIT"),
                (k.glossy, "GLOSSY"),
                (k.textured, "TEXTURED"),
                (k.masked, "MASKED"),
                (k.fogged, "FOGGED"),
                (k.additive, "ADDITIVE"),
                (k.overlay, "OVERLAY"),
            ] {
                if on {
                    fragment.shader_defs.push(def.into());
                }
            }
        }
        descriptor.primitive.cull_mode = match k.cull {
            1 => Some(Face::Back),
            2 => Some(Face::Front),
            _ => None,
        };
        Ok(())
    }
}

/// The [`SceneMaterial`] made of each `StandardMaterial` met so far.
#[derive(Resource, Default)]
struct Made(HashMap<AssetId<StandardMaterial>, Handle<SceneMaterial>>);

/// Draws the scene with [`SceneMaterial`].
pub struct ShadingPlugin;

impl Plugin for ShadingPlugin {
    fn build(&self, app: &mut App) {
        // Without a renderer (the headless check of the schedule) there is nothing to draw.
        let Some(mut shaders) = app.world_mut().get_resource_mut::<Assets<Shader>>() else {
            return;
        };
        // A UUID handle: inserting cannot fail.
        let _ = shaders.insert(
            SHADER.id(),
            Shader::from_wgsl(include_str!("shading.wgsl"), "bloxquarium/shading.wgsl"),
        );
        // In PostUpdate's stage of the client's chain: after the scene spawner has put the
        // models' entities in, before the frame is drawn, so no model is ever drawn (and no
        // pipeline compiled) with the `StandardMaterial` it came with.
        app.add_plugins(MaterialPlugin::<SceneMaterial>::default())
            .init_resource::<Made>()
            .add_systems(
                PostUpdate,
                (
                    one_vertex_layout,
                    use_scene_materials,
                    see_through_casts_no_shadow,
                )
                    .chain()
                    .in_set(crate::stages::ClientSystems::Send),
            );
    }
}

/// Gives every mesh the same vertex layout: position, normal and texture coordinates (zero
/// where a mesh had none; tangents dropped, nothing here reads them). Each layout the renderer
/// meets costs a vertex buffer slab of its own (at least 1 MiB, and 2 MiB of bookkeeping) and a
/// pipeline per kind of surface and per pass, compiled and kept by the software renderer: with
/// the three layouts of the scene's meshes, 15 MiB more memory than with one.
fn one_vertex_layout(
    mut events: MessageReader<AssetEvent<Mesh>>,
    mut meshes: ResMut<Assets<Mesh>>,
) {
    for event in events.read() {
        let AssetEvent::Added { id } = *event else {
            continue;
        };
        // A mesh whose data lives only in the renderer (`try_*`: Err) is left as it is.
        let Some(mesh) = meshes.get(id) else {
            continue;
        };
        let (Ok(uv), Ok(tangents), Ok(position)) = (
            mesh.try_attribute_option(Mesh::ATTRIBUTE_UV_0),
            mesh.try_attribute_option(Mesh::ATTRIBUTE_TANGENT),
            mesh.try_attribute_option(Mesh::ATTRIBUTE_POSITION),
        ) else {
            continue;
        };
        let (no_uv, tangents) = (uv.is_none(), tangents.is_some());
        let Some(n) = position.map(|p| p.len()) else {
            continue;
        };
        if !no_uv && !tangents {
            continue;
        }
        let Some(mut mesh) = meshes.get_mut(id) else {
            continue;
        };
        if no_uv {
            let _ = mesh.try_insert_attribute(Mesh::ATTRIBUTE_UV_0, vec![[0.0f32, 0.0]; n]);
        }
        if tangents {
            let _ = mesh.try_remove_attribute(Mesh::ATTRIBUTE_TANGENT);
        }
    }
}

/// Gives every entity drawn with a `StandardMaterial` the [`SceneMaterial`] made of it (once
/// the source is loaded).
fn use_scene_materials(
    mut commands: Commands,
    standard: Query<(Entity, &MeshMaterial3d<StandardMaterial>)>,
    sources: Res<Assets<StandardMaterial>>,
    mut scene: ResMut<Assets<SceneMaterial>>,
    mut made: ResMut<Made>,
) {
    for (e, m) in &standard {
        let Some(source) = sources.get(&m.0) else {
            continue;
        };
        let handle = made
            .0
            .entry(m.0.id())
            .or_insert_with(|| scene.add(SceneMaterial::from_standard(source)))
            .clone();
        commands
            .entity(e)
            .remove::<MeshMaterial3d<StandardMaterial>>()
            .insert(MeshMaterial3d(handle));
    }
}

/// What light passes through casts no shadow: the glass, the water's surface and the caustics
/// (blended materials) would otherwise darken the whole tank, and cost a shadow pass of their
/// own. Runs after [`use_scene_materials`], in the same frame.
fn see_through_casts_no_shadow(
    mut commands: Commands,
    added: Query<(Entity, &MeshMaterial3d<SceneMaterial>), Added<MeshMaterial3d<SceneMaterial>>>,
    materials: Res<Assets<SceneMaterial>>,
) {
    for (e, m) in &added {
        if materials.get(&m.0).is_some_and(SceneMaterial::see_through) {
            commands.entity(e).insert(bevy::light::NotShadowCaster);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scene_material_carries_what_the_standard_one_says() {
        let texture = Handle::<Image>::default();
        let glass = StandardMaterial {
            base_color: Color::srgba(0.8, 0.95, 1.0, 0.07),
            alpha_mode: AlphaMode::Blend,
            unlit: true,
            double_sided: true,
            cull_mode: None,
            ..default()
        };
        let lean = SceneMaterial::from_standard(&glass);
        assert!(!lean.lit && lean.see_through() && lean.cull_mode.is_none());
        assert!((lean.uniform.base_color.w - 0.07).abs() < 1e-6);
        let key = SceneKey::from(&lean);
        assert_eq!(
            (key.lit, key.glossy, key.textured, key.masked, key.cull),
            (false, false, false, false, 0),
            "unlit glass has no highlight whatever its roughness"
        );
        assert!(key.fogged && !key.additive, "{key:?}");
        let glow = SceneMaterial::from_standard(&StandardMaterial {
            alpha_mode: AlphaMode::Add,
            ..glass.clone()
        });
        assert!(SceneKey::from(&glow).additive && glow.see_through());

        let sand = StandardMaterial {
            base_color_texture: Some(texture.clone()),
            perceptual_roughness: 0.95,
            emissive: LinearRgba::rgb(0.1, 0.2, 0.3),
            uv_transform: bevy::math::Affine2::from_scale(Vec2::splat(2.5)),
            fog_enabled: false,
            ..default()
        };
        let lean = SceneMaterial::from_standard(&sand);
        assert!(lean.lit && !lean.see_through());
        assert_eq!(lean.texture, Some(texture));
        assert_eq!(lean.cull_mode, Some(Face::Back));
        assert_eq!(lean.uniform.surface.x, 0.95);
        assert_eq!(lean.uniform.emissive, Vec4::new(0.1, 0.2, 0.3, 1.0));
        assert_eq!(lean.uniform.uv_transform.x_axis, Vec3::new(2.5, 0.0, 0.0));
        let key = SceneKey::from(&lean);
        assert_eq!(
            (key.lit, key.glossy, key.textured, key.masked, key.cull),
            (true, false, true, false, 1)
        );
        assert!(!key.fogged && !key.additive, "opaque, no fog");

        let cut = SceneMaterial::from_standard(&StandardMaterial {
            alpha_mode: AlphaMode::Mask(0.3),
            ..default()
        });
        let key = SceneKey::from(&cut);
        assert!(key.masked && key.glossy && !cut.see_through(), "{key:?}");
        assert_eq!(cut.uniform.surface.z, 0.3);

        let caustics = Overlay {
            texture: uuid_handle!("0b2c6e43-1f7a-4c55-9d3e-7a61c2f0e5b8"),
            color: Vec4::new(1.0, 1.0, 1.0, 0.5),
            uv_transform: Mat3::from_scale(Vec2::splat(2.5)),
            drift: Vec4::new(0.02, 0.01, 0.0, 0.0),
        };
        let sand_lit = SceneMaterial::from_standard(&sand);
        let both = sand_lit.with_overlay(&caustics);
        assert!(SceneKey::from(&both).overlay && !SceneKey::from(&sand_lit).overlay);
        assert_eq!(both.overlay, Some(caustics.texture.clone()));
        assert_eq!(both.uniform.overlay_color.w, 0.5);
        assert_eq!(both.uniform.overlay_drift, caustics.drift);
        assert_eq!(
            both.uniform.base_color, sand_lit.uniform.base_color,
            "the sand's own look kept"
        );
        assert_eq!(both.texture, sand_lit.texture);
        assert_ne!(both.overlay, both.texture);
    }

    #[test]
    fn every_mesh_gets_one_vertex_layout() {
        use bevy::mesh::{Indices, PrimitiveTopology};
        let mut app = App::new();
        app.add_plugins((MinimalPlugins, AssetPlugin::default()))
            .init_asset::<Mesh>()
            .add_systems(Update, one_vertex_layout);
        let bare = Mesh::new(PrimitiveTopology::TriangleList, default())
            .with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, vec![[0.0f32, 0.0, 0.0]; 3])
            .with_inserted_attribute(Mesh::ATTRIBUTE_NORMAL, vec![[0.0f32, 1.0, 0.0]; 3])
            .with_inserted_indices(Indices::U32(vec![0, 1, 2]));
        let tangents = bare
            .clone()
            .with_inserted_attribute(Mesh::ATTRIBUTE_UV_0, vec![[0.5f32, 0.5]; 3])
            .with_inserted_attribute(Mesh::ATTRIBUTE_TANGENT, vec![[1.0f32, 0.0, 0.0, 1.0]; 3]);
        let mut meshes = app.world_mut().resource_mut::<Assets<Mesh>>();
        let (bare, tangents) = (meshes.add(bare), meshes.add(tangents));
        app.update();
        app.update();
        let meshes = app.world().resource::<Assets<Mesh>>();
        let layout = |h: &Handle<Mesh>| {
            let m = meshes.get(h).expect("the mesh is there");
            let ids: Vec<_> = m.attributes().map(|(a, _)| a.id).collect();
            (ids, m.get_vertex_size())
        };
        assert_eq!(layout(&bare), layout(&tangents), "one layout for both");
        assert_eq!(layout(&bare).1, 32, "position, normal, uv");
        let uv = meshes
            .get(&bare)
            .and_then(|m| m.attribute(Mesh::ATTRIBUTE_UV_0))
            .map(|v| v.len());
        assert_eq!(uv, Some(3), "zero uvs, one per vertex");
        let kept = meshes
            .get(&tangents)
            .and_then(|m| m.attribute(Mesh::ATTRIBUTE_UV_0));
        assert!(
            matches!(kept, Some(bevy::mesh::VertexAttributeValues::Float32x2(v)) if v[0] == [0.5, 0.5])
        );
    }
}
