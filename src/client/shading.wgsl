// The client's lean material (`src/client/shading.rs`): base colour, an optional texture,
// emission, and for lit surfaces Lambert diffuse with a Blinn-Phong highlight from the
// directional lights (with their shadows) and the clustered point lights, plus ambient light;
// then Bevy's linear fog and tone mapping. Everything a surface does not use is left out by
// shader defs (`LIT`, `GLOSSY`, `TEXTURED`, `MASKED`), not by branches: the software renderer
// runs every branch of a shader for every pixel.

#import bevy_pbr::{
    forward_io::VertexOutput,
    mesh_view_bindings as view_bindings,
    mesh_view_types::DIRECTIONAL_LIGHT_FLAGS_SHADOWS_ENABLED_BIT,
    pbr_types,
    pbr_functions,
    shadows,
    clustered_forward,
    fog::linear_fog,
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
    // Bevy's StandardMaterial flags: fog on, and the alpha mode (read by `premultiply_alpha`).
    flags: u32,
};

@group(#{MATERIAL_BIND_GROUP}) @binding(0) var<uniform> material: SceneMaterial;
@group(#{MATERIAL_BIND_GROUP}) @binding(1) var base_texture: texture_2d<f32>;
@group(#{MATERIAL_BIND_GROUP}) @binding(2) var base_sampler: sampler;

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

@fragment
fn fragment(in: VertexOutput, @builtin(front_facing) is_front: bool) -> @location(0) vec4<f32> {
    var color = material.base_color;
#ifdef VERTEX_COLORS
    color = color * in.color;
#endif
#ifdef TEXTURED
#ifdef VERTEX_UVS_A
    let t = view_bindings::globals.time;
    let d = material.drift;
    let uv = (material.uv_transform * vec3(in.uv, 1.0)).xy + vec2(d.x * t, d.y * t + d.z * sin(d.w * t));
    color = color * textureSample(base_texture, base_sampler, uv);
#endif
#endif
#ifdef MASKED
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

    let n_directional = view_bindings::lights.n_directional_lights;
    for (var i = 0u; i < n_directional; i = i + 1u) {
        let light = &view_bindings::lights.directional_lights[i];
        let l = (*light).direction_to_light;
        // The cascade this pixel falls in, sampled once: Bevy's `fetch_directional_shadow` also
        // samples the next cascade to blend the two, which the software renderer pays for on
        // every pixel whether it blends or not.
        var shadow = 1.0;
        let cascade = shadows::get_cascade_index(i, view_z);
        if ((*light).flags & DIRECTIONAL_LIGHT_FLAGS_SHADOWS_ENABLED_BIT) != 0u && cascade < (*light).num_cascades {
            shadow = shadows::sample_directional_cascade(i, cascade, in.world_position, n, in.position.xy);
        }
        direct += reflected(n, l, v, diffuse_color, f0, shininess, spec_norm) * (*light).color.rgb * shadow;
    }

    let is_orthographic = view_bindings::view.clip_from_view[3].w == 1.0;
    let cluster = clustered_forward::view_fragment_cluster_index(in.position.xy, view_z, is_orthographic);
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

    // Bevy's linear fog without light scattering. Bevy's `apply_fog` (in
    // `main_pass_post_lighting_processing`) samples the sun's shadow map for every pixel and
    // computes all four fog modes on the software renderer, so the end of that function is
    // written out here without it.
#ifdef DISTANCE_FOG
    if (material.flags & pbr_types::STANDARD_MATERIAL_FLAGS_FOG_ENABLED_BIT) != 0u {
        let distance = length(in.world_position.xyz - view_bindings::view.world_position.xyz);
        color = linear_fog(view_bindings::fog, color, distance, vec3(0.0));
    }
#endif
#ifdef TONEMAP_IN_SHADER
    color = tone_mapping(color, view_bindings::view.color_grading);
#ifdef DEBAND_DITHER
    var rgb = powsafe(color.rgb, 1.0 / 2.2);
    rgb += screen_space_dither(in.position.xy);
    color = vec4(powsafe(rgb, 2.2), color.a);
#endif
#endif
#ifdef PREMULTIPLY_ALPHA
    color = pbr_functions::premultiply_alpha(material.flags, color);
#endif
    return color;
}
