// Applies the saved theme before first paint (a classic script, so a strict CSP without inline scripts still allows it).
try {
  var t = localStorage.getItem("cc.theme");
  if (t === "light" || t === "dark") document.documentElement.dataset.theme = t;
} catch (e) {}
