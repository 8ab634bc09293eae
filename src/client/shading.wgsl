// The client's lean material (`src/client/shading.rs`): base colour, an optional texture,
// emission, and for lit surfaces Lambert diffuse with a Blinn-Phong highlight from the sun (the
// first directional light, with its shadow) and the clustered point lights, plus ambient light;
// then linear fog and Bevy's tone mapping. Everything a surface does not use is left out by
// shader defs (`LIT`, `GLOSSY`, `TEXTURED`, `MASKED`, `FOGGED`, `ADDITIVE`, `OVERLAY`), not by branches:
// the software renderer runs every branch of a shader for every pixel.
//
// No `if` or loop here (nor in what it calls) has a condition made of uniform values alone: the
// software Vulkan driver (lavapipe, Mesa 22.3) specialises such a shader on those values by
// compiling it again at every draw whose bindings changed, and keeps every copy: the client's
// memory grew every frame. Such choices are `select`s, or shader defs.

#import bevy_pbr::{
    forward_io::VertexOutput,
    mesh_view_bindings as view_bindings,
    mesh_view_types::DIRECTIONAL_LIGHT_FLAGS_SHADOWS_ENABLED_BIT,
    shadow_sampling::sample_shadow_map,
    clustered_forward,
    lighting::getDistanceAttenuation,
    view_transformations::position_world_to_view,
}
#import bevy_render::maths::{PI, powsafe}
#import bevy_core_pipeline::tonemapping::{tone_mapping, screen_space_dither}

struct SceneMaterial {
    base_color: vec4<f32>,
    emissive: vec4<f32>,
    uv_transform: mat3x3<f32>,
    // x: perceptual roughness, y: metallic, z: alpha cutoff (masked surfaces)
    surface: vec4<f32>,
    // the texture's drift in time t: (x·t, y·t + z·sin(w·t))
    drift: vec4<f32>,
    // `OVERLAY`: light added over the surface (the caustics over the sand), as a layer of
    // its own would add it: colour × its texture, with its own UV transform and drift
    overlay_color: vec4<f32>,
    overlay_uv_transform: mat3x3<f32>,
    overlay_drift: vec4<f32>,
};

@group(#{MATERIAL_BIND_GROUP}) @binding(0) var<uniform> material: SceneMaterial;
@group(#{MATERIAL_BIND_GROUP}) @binding(1) var base_texture: texture_2d<f32>;
@group(#{MATERIAL_BIND_GROUP}) @binding(2) var base_sampler: sampler;
@group(#{MATERIAL_BIND_GROUP}) @binding(3) var overlay_texture: texture_2d<f32>;
@group(#{MATERIAL_BIND_GROUP}) @binding(4) var overlay_sampler: sampler;

// Texture coordinates moved by `transform` and drifting by `d` in time t: (x·t, y·t + z·sin(w·t)).
fn drifting(uv: vec2<f32>, transform: mat3x3<f32>, d: vec4<f32>) -> vec2<f32> {
    let t = view_bindings::globals.time;
    return (transform * vec3(uv, 1.0)).xy + vec2(d.x * t, d.y * t + d.z * sin(d.w * t));
}

// Fog (`FOGGED`) and tone mapping of a colour at `world_position`. Bevy's linear fog without
// light scattering: Bevy's `apply_fog` (in `main_pass_post_lighting_processing`) samples the
// sun's shadow map for every pixel and computes all four fog modes on the software renderer;
// its `linear_fog` branches on the scattering colour (a uniform), so the formula is written out.
fn finish(c: vec4<f32>, world_position: vec3<f32>) -> vec4<f32> {
    var color = c;
#ifdef DISTANCE_FOG
#ifdef FOGGED
    let fog = view_bindings::fog;
    let distance = length(world_position - view_bindings::view.world_position.xyz);
    let fog_alpha = fog.base_color.a * (1.0 - clamp((fog.be.y - distance) / (fog.be.y - fog.be.x), 0.0, 1.0));
    color = vec4(mix(color.rgb, fog.base_color.rgb, fog_alpha), color.a);
#endif
#endif
#ifdef TONEMAP_IN_SHADER
    color = tone_mapping(color, view_bindings::view.color_grading);
#endif
    return color;
}

// What a surface reflects of a light from `l`, per unit of light: Lambert diffuse and a
// Blinn-Phong highlight; rough surfaces (no `GLOSSY`) have no highlight worth its cost (Bevy's
// lobe at roughness 0.6 and above is a faint wide glow).
fn reflected(n: vec3<f32>, l: vec3<f32>, v: vec3<f32>, diffuse_color: vec3<f32>, f0: vec3<f32>, shininess: f32, norm: f32) -> vec3<f32> {
    let diffuse = diffuse_color / PI * saturate(dot(n, l));
#ifdef GLOSSY
    let h = normalize(l + v);
    return diffuse + f0 * norm * pow(saturate(dot(n, h)), shininess) * saturate(dot(n, l));
#else
    return diffuse;
#endif
}

// How much of the sun's light reaches `world_position` (1: all, 0: in shadow), from the
// cascade of the sun's shadow map that the pixel falls in (Bevy's `fetch_directional_shadow`
// without its blend into the next cascade and its soft-shadow path, and without branching on
// the light's settings).
fn sunlit(world_position: vec4<f32>, view_z: f32, n: vec3<f32>) -> f32 {
    let sun = &view_bindings::lights.directional_lights[0];
    // The first cascade whose far bound is beyond the pixel.
    var cascade = 0u;
    for (var i = 0u; i < #{MAX_CASCADES_PER_LIGHT}u; i = i + 1u) {
        cascade += select(0u, 1u, i < (*sun).num_cascades & (*sun).cascades[i].far_bound <= -view_z);
    }
    let c = min(cascade, #{MAX_CASCADES_PER_LIGHT}u - 1u);
    let normal_offset = (*sun).shadow_normal_bias * (*sun).cascades[c].texel_size * n;
    let depth_offset = (*sun).shadow_depth_bias * (*sun).direction_to_light;
    let clip = (*sun).cascades[c].clip_from_world * vec4(world_position.xyz + normal_offset + depth_offset, 1.0);
    let w = select(1.0, clip.w, clip.w > 0.0);
    let ndc = clip.xyz / w;
    let uv = ndc.xy * vec2(0.5, -0.5) + vec2(0.5);
    let shadow = sample_shadow_map(uv, ndc.z, i32((*sun).depth_texture_base_index + c), vec2(0.0), (*sun).cascades[c].texel_size);
    let inside = clip.w > 0.0 & all(ndc.xy >= vec2(-1.0)) & ndc.z >= 0.0 & all(ndc <= vec3(1.0));
    let shadowed = ((*sun).flags & DIRECTIONAL_LIGHT_FLAGS_SHADOWS_ENABLED_BIT) != 0u & cascade < (*sun).num_cascades & inside;
    return select(1.0, shadow, shadowed);
}

// The cluster of the clustered lights the pixel is in (Bevy's `view_fragment_cluster_index`,
// choosing between the perspective and the orthographic slice by `select`).
fn cluster_of(frag_coord: vec2<f32>, view_z: f32) -> u32 {
    let lights = &view_bindings::lights;
    let xy = vec2<u32>(floor((frag_coord - view_bindings::view.viewport.xy) * (*lights).cluster_factors.xy));
    let f = (*lights).cluster_factors.zw;
    let is_orthographic = view_bindings::view.clip_from_view[3].w == 1.0;
    let perspective = u32(log(max(-view_z, 1e-6)) * f.x - f.y + 1.0);
    let orthographic = u32(max(floor((view_z - f.x) * f.y), 0.0));
    let z = min(select(perspective, orthographic, is_orthographic), (*lights).cluster_dimensions.z - 1u);
    return clustered_forward::fragment_cluster_index(vec3(xy, z), (*lights).cluster_dimensions);
}

@fragment
fn fragment(in: VertexOutput, @builtin(front_facing) is_front: bool) -> @location(0) vec4<f32> {
    var color = material.base_color;
#ifdef VERTEX_COLORS
    color = color * in.color;
#endif
#ifdef TEXTURED
#ifdef VERTEX_UVS_A
    color = color * textureSample(base_texture, base_sampler, drifting(in.uv, material.uv_transform, material.drift));
#endif
#endif
#ifdef MASKED
    // Depends on the texture or the vertex colours; a masked surface with neither (none in the
    // game) would branch on uniforms alone (see the top of this file).
    if color.a < material.surface.z {
        discard;
    }
#endif

#ifdef LIT
    var n = normalize(in.world_normal);
    if !is_front {
        n = -n;
    }
    let v = normalize(view_bindings::view.world_position.xyz - in.world_position.xyz);
    let roughness = clamp(material.surface.x, 0.089, 1.0);
    let metallic = material.surface.y;
    let diffuse_color = color.rgb * (1.0 - metallic);
    let f0 = mix(vec3(0.04), color.rgb, metallic);
    // Blinn-Phong exponent matching a GGX lobe of this roughness.
    let a = roughness * roughness;
    let shininess = max(2.0 / (a * a) - 2.0, 1.0);
    let spec_norm = (shininess + 8.0) / (8.0 * PI);

    var direct = vec3(0.0);
    let view_z = position_world_to_view(in.world_position.xyz).z;

    // The sun: the first directional light (the game has one; others are not drawn).
    let sun = &view_bindings::lights.directional_lights[0];
    let from_sun = reflected(n, (*sun).direction_to_light, v, diffuse_color, f0, shininess, spec_norm)
        * (*sun).color.rgb * sunlit(in.world_position, view_z, n);
    direct += select(vec3(0.0), from_sun, view_bindings::lights.n_directional_lights > 0u);

    let cluster = cluster_of(in.position.xy, view_z);
    let ranges = clustered_forward::unpack_clusterable_object_index_ranges(cluster);
    for (var i = ranges.first_point_light_index_offset; i < ranges.first_spot_light_index_offset; i = i + 1u) {
        let light = &view_bindings::clustered_lights.data[clustered_forward::get_clusterable_object_id(i)];
        let to_light = (*light).position_radius.xyz - in.world_position.xyz;
        let d2 = max(dot(to_light, to_light), 0.0001);
        let l = to_light * inverseSqrt(d2);
        let attenuation = getDistanceAttenuation(d2, (*light).color_inverse_square_range.w);
        direct += reflected(n, l, v, diffuse_color, f0, shininess, spec_norm) * (*light).color_inverse_square_range.rgb * attenuation;
    }

    let ambient = diffuse_color * view_bindings::lights.ambient_color.rgb;
    let lit = view_bindings::view.exposure * (direct + ambient) + material.emissive.rgb * color.a;
    color = vec4(lit, color.a);
#endif

    color = finish(color, in.world_position.xyz);
#ifdef OVERLAY
#ifdef VERTEX_UVS_A
    // Added as an additive layer of its own would add it, without drawing the surface twice.
    let glow = finish(
        material.overlay_color * textureSample(overlay_texture, overlay_sampler, drifting(in.uv, material.overlay_uv_transform, material.overlay_drift)),
        in.world_position.xyz,
    );
    color = vec4(color.rgb + glow.rgb * glow.a, color.a);
#endif
#endif
#ifdef TONEMAP_IN_SHADER
#ifdef DEBAND_DITHER
    var rgb = powsafe(color.rgb, 1.0 / 2.2);
    rgb += screen_space_dither(in.position.xy);
    color = vec4(powsafe(rgb, 2.2), color.a);
#endif
#endif
    // Bevy's `premultiply_alpha`, with the alpha mode a shader def instead of a uniform flag.
#ifdef BLEND_PREMULTIPLIED_ALPHA
#ifdef ADDITIVE
    color = vec4(color.rgb * color.a, 0.0);
#endif
#endif
#ifdef BLEND_MULTIPLY
    color = vec4(color.rgb * color.a, color.a);
#endif
    return color;
}
