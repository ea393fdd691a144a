// The image-set upload with a progress bar: the form posts through XMLHttpRequest (fetch cannot
// report upload progress) and asks for JSON back, then goes to the new set or lists the reasons
// it was refused. Without this module the same form posts plainly and the page answers in HTML.

const form = document.getElementById("upload-form");
const bar = document.getElementById("upload-progress");
const statusLine = document.getElementById("upload-status");
const button = document.getElementById("upload-submit");
const maxBytes = Number(form.dataset.maxBytes);

function clearErrors() {
  for (const list of form.querySelectorAll("ul.errorlist, .form-error")) list.remove();
  for (const field of form.querySelectorAll(".field.invalid")) field.classList.remove("invalid");
}

// Django's form.errors.get_json_data(): {"field": [{"message": "..."}], "__all__": [...]}.
function showErrors(errors) {
  for (const [name, problems] of Object.entries(errors)) {
    const input = form.elements.namedItem(name);
    const field = input ? input.closest(".field") : null;
    const list = document.createElement("ul");
    list.className = "errorlist";
    for (const problem of problems) {
      const item = document.createElement("li");
      item.textContent = problem.message;
      list.append(item);
    }
    if (field) {
      field.classList.add("invalid");
      field.append(list);
    } else {
      list.classList.add("form-error");
      form.prepend(list);
    }
  }
  statusLine.textContent = "Nothing was stored: please correct the fields marked.";
}

function send(event) {
  event.preventDefault();
  clearErrors();
  const file = form.elements.namedItem("archive").files[0];
  if (file && file.size > maxBytes) {
    const mib = (bytes) => (bytes / 2 ** 20).toFixed(1);
    showErrors({ archive: [{ message: `The zip is ${mib(file.size)} MiB; at most ${mib(maxBytes)} MiB is accepted.` }] });
    return;
  }
  const request = new XMLHttpRequest();
  request.open("POST", form.action || window.location.href);
  request.setRequestHeader("Accept", "application/json");
  request.responseType = "json";
  request.upload.addEventListener("progress", (progress) => {
    if (!progress.lengthComputable) return;
    bar.value = progress.loaded / progress.total;
    statusLine.textContent = `Uploading… ${Math.round(bar.value * 100)} %`;
  });
  request.upload.addEventListener("load", () => {
    bar.removeAttribute("value"); // indeterminate: the server now checks and imports every image
    statusLine.textContent = "Uploaded; checking and importing the images…";
  });
  request.addEventListener("load", () => {
    button.disabled = false;
    bar.hidden = true;
    const body = request.response;
    if (request.status === 200 && body && body.url) {
      window.location.assign(body.url);
    } else if (body && body.errors) {
      showErrors(body.errors);
    } else {
      statusLine.textContent = `The upload failed (HTTP ${request.status}).`;
    }
  });
  request.addEventListener("error", () => {
    button.disabled = false;
    bar.hidden = true;
    statusLine.textContent = "The upload failed: the connection was lost. Nothing was stored; try again.";
  });
  button.disabled = true;
  bar.hidden = false;
  bar.value = 0;
  request.send(new FormData(form));
}

form.addEventListener("submit", send);
form.dataset.enhanced = "true"; // tests wait for this before submitting
