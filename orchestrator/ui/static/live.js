// A running run's page refreshes its content every few seconds until the run ends.
(function () {
  function tick() {
    var live = document.getElementById("live");
    if (!live || !live.dataset.refresh) return;
    fetch(live.dataset.refresh).then(function (r) { return r.text(); }).then(function (html) {
      live.innerHTML = html;
      var header = live.querySelector("header.run");
      var status = header && header.dataset.status;
      if (["succeeded", "failed", "cancelled"].indexOf(status) >= 0) delete live.dataset.refresh;
      else setTimeout(tick, 2000);
    }).catch(function () { setTimeout(tick, 5000); });
  }
  document.addEventListener("DOMContentLoaded", function () { setTimeout(tick, 2000); });
})();
