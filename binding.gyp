{
  "targets": [
    {
      "target_name": "meshlet_original_dst",
      "sources": ["sidecar/native/original_dst.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "conditions": [
        ["OS!='linux'", { "type": "none", "sources!": ["sidecar/native/original_dst.c"] }]
      ]
    }
  ]
}
