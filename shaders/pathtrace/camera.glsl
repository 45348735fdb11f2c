// camera.glsl: rays from the camera of the push constants (pc): a pinhole, or a thin lens
// focused on the plane at the focus distance along the view axis.

// The pinhole ray's direction through ndc (0..1 across the image, y down). The principal
// point's offset from the image centre, (cam_v.w, cam_w.w) = ((2 cx + 1 - w) / w,
// (2 cy + 1 - h) / h), is 0 without intrinsics; with cam_u = right * w / (2 fx) and
// cam_v = up * h / (2 fy) this is right * (x - 0.5 - cx) / fx - up * (y - 0.5 - cy) / fy + forward
// at pixel coordinate (x, y) = ndc * (w, h), as OpenCV's K has it.
vec3 camera_dir(vec2 ndc) {
  return normalize(pc.cam_w.xyz + (2.0 * ndc.x - 1.0 - pc.cam_v.w) * pc.cam_u.xyz +
                   (1.0 - 2.0 * ndc.y + pc.cam_w.w) * pc.cam_v.xyz);
}

// The ray of one sample of pixel px: jittered in the pixel, and with a lens over its aperture.
void camera_ray(ivec2 px, vec2 inv_size, out vec3 o, out vec3 d) {
  vec2 ndc = (vec2(px) + sobol2(DIM_PIXEL)) * inv_size;
  d = camera_dir(ndc);
  o = pc.cam_pos.xyz;
  if (pc.cam_pos.w > 0.0) {  // thin lens: focus on the plane at focus distance along W
    vec3 focus = o + d * (pc.cam_u.w / dot(d, pc.cam_w.xyz));
    vec2 lu = sobol2(DIM_LENS);
    float r = 0.5 * pc.cam_pos.w * sqrt(lu.x), phi = 2.0 * PI * lu.y;
    o += r * cos(phi) * normalize(pc.cam_u.xyz) + r * sin(phi) * normalize(pc.cam_v.xyz);
    d = normalize(focus - o);
  }
}
